"""Spark, as the stream stage uses it: how to submit the streaming job to any cluster."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Literal

import dagster as dg

import txstream_spark
from txstream_dagster.db.logins import Login
from txstream_dagster.jvm import SPARK_KAFKA_CONNECTOR, java_executable, module_jars
from txstream_dagster.resources import PostgresResource

JOB_SCRIPT = Path(txstream_spark.__file__).parent / "main.py"
# log4j2.properties for local runs (Spark's INFO logs would bury the job's own progress lines).
LOCAL_SPARK_CONF_DIR = Path(txstream_spark.__file__).parents[1] / "conf"


class SparkResource(dg.ConfigurableResource):
    """Submits `spark/txstream_spark/main.py` with spark-submit to `master` (local[N], spark://, k8s://),
    with every setting of the job on its command line: the job has no defaults of its own.

    Spark's Kafka connector comes from `jvm_dir` (what `make install` resolved from jvm/pom.xml), passed
    with --jars; without it, from Spark's own classpath (the images built from deploy/docker carry it).
    `resources/build.py` fills the fields from the TXSTREAM_SPARK_* and TXSTREAM_STREAM_* settings.
    """

    master: str
    jvm_dir: str
    max_offsets_per_trigger: int
    starting_offsets: Literal["earliest", "latest"]  # where a new checkpoint starts
    fail_on_data_loss: bool
    # continuous: one long-running query the stream sensor keeps alive; catch-up: runs that end.
    mode: Literal["continuous", "catch-up"] = "continuous"
    trigger_interval: str = "1 second"  # the continuous query's processingTime trigger

    @property
    def continuous(self) -> bool:
        return self.mode == "continuous"

    checkpoint_root: str
    work_dir: str  # where the job's package for a cluster's executors is zipped
    driver_memory: str = "1g"
    spark_conf: dict[str, str] = {}

    @property
    def is_local(self) -> bool:
        return self.master.startswith("local")

    def checkpoint_for(self, topic: str) -> str:
        return f"{self.checkpoint_root.rstrip('/')}/{topic}"

    def _job_package(self) -> str:
        """txstream_spark zipped for --py-files: what a cluster's executors import."""
        target = Path(self.work_dir) / "txstream_spark"
        target.parent.mkdir(parents=True, exist_ok=True)
        package = Path(txstream_spark.__file__).parent
        return shutil.make_archive(str(target), "zip", root_dir=package.parent, base_dir=package.name)

    def submit_command(self, *, bootstrap: str, topic: str, trigger: str, interval: str = "1 second") -> list[str]:
        java_executable()
        spark_submit = shutil.which(
            "spark-submit", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        )
        if spark_submit is None:
            raise RuntimeError(
                "spark-submit was not found: install pyspark in this environment or put Spark's bin on PATH."
            )
        command = [
            spark_submit,
            "--master",
            self.master,
            "--driver-memory",
            self.driver_memory,
            "--conf",
            f"spark.pyspark.python={sys.executable}" if self.is_local else "spark.submit.deployMode=client",
        ]
        for key, value in sorted(self.spark_conf.items()):
            command += ["--conf", f"{key}={value}"]
        connector = self._connector_jars()
        if connector:
            command += ["--jars", ",".join(connector)]
        if not self.is_local:
            command += ["--py-files", self._job_package()]
        command += [
            str(JOB_SCRIPT),
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--checkpoint",
            self.checkpoint_for(topic),
            "--trigger",
            trigger,
            "--interval",
            interval,
            "--starting-offsets",
            self.starting_offsets,
            "--max-offsets-per-trigger",
            str(self.max_offsets_per_trigger),
            "--fail-on-data-loss",
            str(self.fail_on_data_loss).lower(),
        ]
        return command

    def _connector_jars(self) -> list[str]:
        """The connector's jars from `jvm_dir`; a local Spark has no other way to get them (a clear error)."""
        jvm_dir = Path(self.jvm_dir)
        if not self.is_local and not (jvm_dir / SPARK_KAFKA_CONNECTOR).is_dir():
            return []  # the cluster's Spark image carries the connector
        return [str(jar) for jar in module_jars(jvm_dir, SPARK_KAFKA_CONNECTOR)]

    def job_env(self, postgres: PostgresResource) -> dict[str, str]:
        """The job reads the warehouse URL, as the writer login, from its environment, never its command line."""
        env = {"TXSTREAM_POSTGRES_URL": postgres.url_for(Login.WRITER), "PYSPARK_PYTHON": sys.executable}
        if self.is_local and LOCAL_SPARK_CONF_DIR.is_dir() and "SPARK_CONF_DIR" not in os.environ:
            env["SPARK_CONF_DIR"] = str(LOCAL_SPARK_CONF_DIR)
        return env
