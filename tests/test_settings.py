"""Settings: typed, validated, and never leaking a secret."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

from resource_helpers import kafka_resource
from stream_helpers import JOB_SETTINGS
from txstream_dagster.db.logins import Login
from txstream_dagster.resources import KafkaResource
from txstream_dagster.resources.build import build_resources, warehouse
from txstream_dagster.settings import Settings, load_settings
from txstream_spark import main as stream_job
from txstream_spark.redaction import redact_url


def test_secrets_never_appear_in_the_repr():
    settings = Settings(postgres_url="postgresql://app:hunter2@db:5432/tx", stripe_api_key="sk_test_abc123")
    assert "hunter2" not in repr(settings)
    assert "sk_test_abc123" not in repr(settings)


def test_redacted_url_keeps_everything_but_the_password():
    assert redact_url("postgresql://app:hunter2@db:5432/tx") == "postgresql://app:***@db:5432/tx"
    assert redact_url("postgresql://db/tx") == "postgresql://db/tx"


# Every other argument the Spark job requires (it has no defaults: the Spark resource passes each setting).
JOB_ARGS = ["--bootstrap", "b:9092", "--checkpoint", "/tmp/cp", *JOB_SETTINGS]


@pytest.mark.parametrize("topic", ["", "has space", "semi;colon", "a" * 250, ".."])
def test_invalid_topic_names_are_refused_with_the_setting_named(topic):
    with pytest.raises(ValueError, match="TXSTREAM_TOPIC"):
        Settings(topic=topic)


@pytest.mark.parametrize("topic", ["has space", "semi;colon", "a" * 250, "..", "stripe.events\n"])
def test_a_topic_name_is_checked_by_the_same_rule_wherever_it_is_given(topic, capsys):
    # Guards the kafka resource's run config and the Spark job's --topic, which bypassed TXSTREAM_TOPIC's check.
    with pytest.raises(ValueError, match="TXSTREAM_TOPIC .* is not a valid Kafka topic name"):
        Settings(topic=topic)
    with pytest.raises(ValueError, match="The kafka resource's topic .* is not a valid Kafka topic name"):
        kafka_resource(topic=topic)
    with pytest.raises(SystemExit) as exit_:
        stream_job.parse_args(["--topic", topic, *JOB_ARGS])
    assert exit_.value.code == 2
    assert "error: --topic " in capsys.readouterr().err


def test_a_topic_set_in_run_config_is_checked_before_the_run_uses_it():
    @dg.asset
    def topic_user(kafka: KafkaResource) -> str:
        return kafka.topic

    kafka = kafka_resource(topic="stripe.events")
    config = {name: getattr(kafka, name) for name in type(kafka).model_fields} | {"topic": "stripe events"}
    result = dg.materialize(
        [topic_user],
        resources={"kafka": kafka},
        raise_on_error=False,
        run_config={"resources": {"kafka": {"config": config}}},
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert "The kafka resource's topic 'stripe events' is not a valid Kafka topic name" in str(
        failure.event_specific_data
    )


def test_valid_topic_names_pass_everywhere():
    assert Settings(topic="stripe.events_v2-eu").topic == "stripe.events_v2-eu"
    assert kafka_resource(topic="a" * 249).topic == "a" * 249
    assert stream_job.parse_args(["--topic", "t", *JOB_ARGS]).topic == "t"


def test_producer_compression_is_one_of_kafkas_codecs():
    assert Settings().producer_compression == "none"
    assert Settings(producer_compression="gzip").producer_compression == "gzip"
    with pytest.raises(ValueError, match="producer_compression"):
        Settings(producer_compression="brotli")


@pytest.mark.parametrize("codec, package", [("snappy", "python-snappy"), ("lz4", "lz4"), ("zstd", "zstandard")])
def test_a_codec_whose_package_is_missing_is_refused_naming_the_package(codec, package, monkeypatch):
    from kafka import codec as kafka_codec

    monkeypatch.setattr(kafka_codec, f"has_{codec}", lambda: False)
    with pytest.raises(ValueError, match=f"TXSTREAM_PRODUCER_COMPRESSION={codec} needs the Python package {package}"):
        Settings(producer_compression=codec)


def test_stripe_key_is_read_from_its_conventional_env_var(monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_xyz")
    assert Settings().stripe_api_key.get_secret_value() == "sk_test_xyz"


def test_an_empty_value_means_unset(monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "")
    monkeypatch.setenv("TXSTREAM_POSTGRES_URL", " ")
    settings = Settings()
    assert settings.stripe_api_key is None and settings.postgres_url is None


def test_every_setting_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    undocumented = [name for name in env_names() if f"`{name}`" not in readme]
    assert not undocumented, f"README.md's configuration table lacks {undocumented}"


def test_variables_read_straight_from_the_environment_are_documented_too():
    # Guards TXSTREAM_DBT_PROJECT_DIR-style settings that bypass Settings and so its documentation tests.
    repo = Path(__file__).resolve().parents[1]
    read = re.compile(r"""(?:os\.environ\.get|os\.getenv|os\.environ\[)\(?\s*["'](TXSTREAM_\w+)["']""")
    names = {
        name
        for folder in ("txstream_dagster", "spark")
        for source in (repo / folder).rglob("*.py")
        for name in read.findall(source.read_text())
    }
    assert "TXSTREAM_DBT_PROJECT_DIR" in names  # the scan finds what it is meant to find
    readme = (repo / "README.md").read_text()
    env_example = (repo / ".env.example").read_text()
    assert not [name for name in names if f"`{name}`" not in readme], "add them to README.md's configuration table"
    assert not [name for name in names if not re.search(rf"^#? ?{name}=", env_example, re.MULTILINE)], (
        "add them to .env.example"
    )


def env_names() -> list[str]:
    return [
        "STRIPE_API_KEY" if name == "stripe_api_key" else f"TXSTREAM_{name.upper()}" for name in Settings.model_fields
    ]


def test_the_code_location_gets_secrets_as_env_vars_and_commands_get_their_values(monkeypatch, tmp_path):
    # What Dagster stores and shows of a resource's config is its fields: secrets must be variable names there.
    monkeypatch.setenv("TXSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TXSTREAM_POSTGRES_URL", "postgresql://db.internal:5432/payments")
    monkeypatch.setenv("TXSTREAM_WRITER_PASSWORD", "writer-secret")
    monkeypatch.setenv("STRIPE_API_KEY", "rk_test_not-a-real-key")
    settings = load_settings()

    location = build_resources(settings)
    assert isinstance(location["postgres"].writer_password, dg.EnvVar)
    assert (location["postgres"].url, location["postgres"].writer_password) == (
        "TXSTREAM_POSTGRES_URL",
        "TXSTREAM_WRITER_PASSWORD",
    )
    assert location["stripe"].api_key == "STRIPE_API_KEY"
    assert location["postgres"].reader_password is None  # unset stays unset

    command = warehouse(settings)  # outside Dagster nothing would resolve an EnvVar
    assert command.url_for(Login.WRITER) == "postgresql://txstream_writer:writer-secret@db.internal:5432/payments"
