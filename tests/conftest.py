"""Session fixtures: a real throwaway PostgreSQL and a real Apache Kafka.

Both are the embedded services `txstream up` starts, on free ports, under a
temporary data dir, started once per session and stopped at the end. Tests
never see the developer's own configuration or `.env`; they use the jars
`make install` resolved (Kafka, Spark's Kafka connector).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from txstream_dagster.db.logins import Login
from txstream_dagster.db.migrate import upgrade_warehouse
from txstream_dagster.dev.embedded_kafka import KafkaNode, Retention
from txstream_dagster.dev.processes import free_port
from txstream_dagster.dev.stack import LocalStack
from txstream_dagster.jvm import SPARK_KAFKA_CONNECTOR, module_jars
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.resources.build import event_log, login_passwords, warehouse
from txstream_dagster.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def installed_jvm_dir() -> Path:
    """Where `make install` put the jars: TXSTREAM_JVM_DIR, else <TXSTREAM_DATA_DIR or .txstream>/jvm."""
    if os.environ.get("TXSTREAM_JVM_DIR"):
        return Path(os.environ["TXSTREAM_JVM_DIR"]).resolve()
    return (REPO_ROOT / os.environ.get("TXSTREAM_DATA_DIR", ".txstream") / "jvm").resolve()


@pytest.fixture(scope="session", autouse=True)
def isolated_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    jvm_dir = installed_jvm_dir()
    for name in list(os.environ):
        if name.startswith("TXSTREAM_") or name.startswith("STRIPE_"):
            del os.environ[name]
    os.environ["TXSTREAM_ENV_FILE"] = os.devnull
    # The venv's executables (txstream, dbt, dagster) and Python for Spark's workers.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["TXSTREAM_DATA_DIR"] = str(tmp_path_factory.mktemp("txstream-data"))
    os.environ["TXSTREAM_LOCAL_POSTGRES_PORT"] = str(free_port())
    os.environ["TXSTREAM_LOCAL_KAFKA_PORT"] = str(free_port())
    os.environ["TXSTREAM_LOCAL_KAFKA_CONTROLLER_PORT"] = str(free_port())
    os.environ["TXSTREAM_JVM_DIR"] = str(jvm_dir)
    return load_settings()


@pytest.fixture(scope="session")
def local_stack(isolated_settings: Settings):
    stack = LocalStack(isolated_settings)
    stack.up()
    upgrade_warehouse(warehouse(isolated_settings), login_passwords(isolated_settings))
    yield stack
    stack.down()


@pytest.fixture(scope="session")
def postgres(local_stack, isolated_settings: Settings) -> PostgresResource:
    return warehouse(isolated_settings)


@pytest.fixture
def clean_warehouse(postgres: PostgresResource) -> PostgresResource:
    """Empty raw and bookkeeping tables, so a test sees only its own rows."""
    with postgres.connect(login=Login.OWNER) as conn:
        conn.execute(
            "TRUNCATE raw.transactions, raw.quarantined_events, raw.forex_rates, "
            "ops.stream_offsets, ops.stream_batches, ops.source_cursors, ops.stream_lag, ops.dbt_node_runs, "
            "ops.synthetic_stripe_objects, ops.reconciliation_results, "
            "ops.quarantine_replays, ops.retention_deletions, ops.dagster_run_failures"
        )
    return postgres


@pytest.fixture
def kafka(local_stack, isolated_settings: Settings) -> KafkaResource:
    """A fresh topic of its own for each test."""
    resource = event_log(isolated_settings).for_topic(f"test.{uuid.uuid4().hex[:12]}")
    resource.ensure_topic()
    return resource


@pytest.fixture
def own_kafka(tmp_path: Path, isolated_settings: Settings):
    """A Kafka of the test's own, which it may stop, kill and start again (the session's stays up)."""
    node = KafkaNode(
        tmp_path / "own-kafka",
        isolated_settings.jvm_lib_dir,
        port=free_port(),
        controller_port=free_port(),
        retention=Retention(hours=1, bytes_per_partition=64 * 1024**2),
    )
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def spark_session(isolated_settings: Settings):
    """A local SparkSession in the test process with Spark's Kafka connector on its classpath, as
    `txstream stream` gives the job (started only by the tests that ask for it)."""
    from pyspark.sql import SparkSession

    jars = ",".join(str(jar) for jar in module_jars(isolated_settings.jvm_lib_dir, SPARK_KAFKA_CONNECTOR))
    session = (
        SparkSession.builder.master("local[2]")
        .appName("txstream-tests")
        .config("spark.jars", jars)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture
def fake_stripe():
    """A local Stripe API over real HTTP (stripe_helpers.FakeStripe), for one test."""
    from stripe_helpers import FakeStripe

    with FakeStripe() as fake:
        yield fake
