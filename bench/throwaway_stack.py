"""A throwaway embedded stack for benchmarks: temp data dir, free ports, stopped at the end.

With TXSTREAM_POSTGRES_URL / TXSTREAM_KAFKA_BOOTSTRAP set, those are used instead.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from txstream_dagster.db.migrate import upgrade_warehouse
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.dev.processes import free_port
from txstream_dagster.dev.stack import LocalStack
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.resources.build import event_log, login_passwords, spark, warehouse
from txstream_dagster.settings import load_settings


@contextmanager
def throwaway_stack(
    topic: str = "bench.events", partitions: int = 4
) -> Iterator[tuple[PostgresResource, KafkaResource]]:
    # The jars `make install` resolved, found before the data dir moves to a temporary one.
    os.environ.setdefault("TXSTREAM_JVM_DIR", str(load_settings().jvm_lib_dir))
    with tempfile.TemporaryDirectory(prefix="txstream-bench-") as data_dir:
        os.environ.setdefault("TXSTREAM_DATA_DIR", data_dir)
        os.environ.setdefault("TXSTREAM_LOCAL_POSTGRES_PORT", str(free_port()))
        os.environ.setdefault("TXSTREAM_LOCAL_KAFKA_PORT", str(free_port()))
        os.environ.setdefault("TXSTREAM_LOCAL_KAFKA_CONTROLLER_PORT", str(free_port()))
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        settings = load_settings()
        stack = LocalStack(settings)
        stack.up()
        try:
            postgres = warehouse(settings)
            upgrade_warehouse(postgres, login_passwords(settings))
            kafka = event_log(settings).for_topic(topic)
            kafka.ensure_topic(partitions=partitions, replication=1)
            yield postgres, kafka
        finally:
            stack.down()


def stack_spark(max_offsets_per_trigger: int | None = None) -> SparkResource:
    """The Spark resource as the code location builds it for the throwaway stack's settings."""
    if max_offsets_per_trigger is not None:
        os.environ["TXSTREAM_SPARK_MAX_OFFSETS_PER_TRIGGER"] = str(max_offsets_per_trigger)
    return spark(load_settings())
