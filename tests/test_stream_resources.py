"""SparkResource: the spark-submit command Dagster runs carries every stream setting to the job."""

from __future__ import annotations

import pydantic
import pytest

from resource_helpers import spark_resource
from txstream_dagster.defs.stream import resources
from txstream_dagster.defs.stream.resources import JOB_SCRIPT, SparkResource
from txstream_dagster.jvm import JvmDependencyMissing
from txstream_dagster.resources.build import spark
from txstream_dagster.settings import Settings, load_settings
from txstream_spark import main as job


@pytest.fixture(autouse=True)
def java_is_not_needed_to_build_a_command(monkeypatch):
    monkeypatch.setattr(resources, "java_executable", lambda: "java")


def job_config(command: list[str]) -> job.StreamConfig:
    """What the job makes of the arguments spark-submit passes it."""
    return job.parse_args(command[command.index(str(JOB_SCRIPT)) + 1 :])


def submit_command(spark: SparkResource) -> list[str]:
    return spark.submit_command(bootstrap="b:9092", topic="t", trigger="available-now")


def test_a_new_checkpoint_starts_at_the_topics_beginning_by_default():
    assert Settings(_env_file=None).stream_starting_offsets == "earliest"
    assert job_config(submit_command(spark_resource())).starting_offsets == "earliest"


def test_the_starting_offsets_setting_reaches_the_job(monkeypatch):
    # Regression: only main.py's --starting-offsets existed; Dagster-launched runs always started at earliest.
    monkeypatch.setenv("TXSTREAM_STREAM_STARTING_OFFSETS", "latest")

    command = submit_command(spark(load_settings()))

    assert command[command.index("--starting-offsets") + 1] == "latest"
    assert job_config(command).starting_offsets == "latest"


def test_an_unknown_starting_offsets_value_is_refused(monkeypatch):
    monkeypatch.setenv("TXSTREAM_STREAM_STARTING_OFFSETS", "newest")
    with pytest.raises(pydantic.ValidationError, match="stream_starting_offsets"):
        Settings(_env_file=None)


def test_a_local_spark_gets_the_connector_jars_make_install_resolved(isolated_settings: Settings):
    command = submit_command(spark_resource(master="local[2]"))
    jars = command[command.index("--jars") + 1].split(",")
    assert any("spark-sql-kafka-0-10_2.13-4.2.0.jar" in jar for jar in jars)
    assert all(jar.startswith(str(isolated_settings.jvm_lib_dir)) for jar in jars)


def test_a_local_spark_without_the_connector_jars_names_the_command_that_installs_them(tmp_path):
    with pytest.raises(JvmDependencyMissing, match="spark-kafka jars are not in .*run `make install`"):
        submit_command(spark_resource(master="local[2]", jvm_dir=str(tmp_path)))


def test_a_cluster_without_local_jars_relies_on_its_spark_image(tmp_path):
    command = submit_command(
        spark_resource(master="spark://spark-master:7077", jvm_dir=str(tmp_path), checkpoint_root=str(tmp_path))
    )
    assert "--jars" not in command
