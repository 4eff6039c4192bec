"""`txstream up|down|status`: the embedded services a machine with no configuration runs.

Only what the settings leave unconfigured is embedded: with TXSTREAM_POSTGRES_URL
set, PostgreSQL is never started here; with TXSTREAM_KAFKA_BOOTSTRAP set, the
broker is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from txstream_dagster.local_stack.embedded_broker import EmbeddedBroker
from txstream_dagster.local_stack.embedded_postgres import EmbeddedPostgres
from txstream_dagster.settings import Settings


class StackNotRunning(RuntimeError):
    pass


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    embedded: bool
    running: bool
    detail: str


class LocalStack:
    def __init__(self, settings: Settings):
        self.settings = settings
        root = settings.data_dir / "stack"
        self.postgres = EmbeddedPostgres(root / "postgres", settings.local_postgres_port)
        self.broker = EmbeddedBroker(root / "broker", settings.local_kafka_port)

    @property
    def embeds_postgres(self) -> bool:
        return self.settings.postgres_url is None

    @property
    def embeds_broker(self) -> bool:
        return not self.settings.kafka_bootstrap

    def up(self) -> list[str]:
        """Start what is embedded; returns what was done, one line each. Safe to call twice."""
        done = []
        if self.embeds_postgres:
            started = self.postgres.start()
            done.append(f"PostgreSQL {'started' if started else 'already running'} on 127.0.0.1:{self.postgres.running_port()}")
        if self.embeds_broker:
            started = self.broker.start()
            done.append(f"Kafka broker {'started' if started else 'already running'} on {self.broker.bootstrap}")
        return done

    def down(self) -> list[str]:
        done = []
        if self.broker.stop():
            done.append("Kafka broker stopped")
        if self.postgres.stop():
            done.append("PostgreSQL stopped")
        return done

    # --- where the pipeline connects --------------------------------------
    def postgres_url(self) -> str:
        if not self.embeds_postgres:
            return self.settings.postgres_url.get_secret_value()
        if not self.postgres.is_running():
            raise StackNotRunning(
                "TXSTREAM_POSTGRES_URL is not set and the embedded PostgreSQL is not running: "
                "run `txstream up`, or set TXSTREAM_POSTGRES_URL to your database."
            )
        return self.postgres.url()

    def reader_password(self) -> str | None:
        if self.settings.reader_password is not None:
            return self.settings.reader_password.get_secret_value()
        return self.postgres.reader_password() if self.embeds_postgres else None

    def kafka_bootstrap(self) -> str:
        if not self.embeds_broker:
            return self.settings.kafka_bootstrap
        if not self.broker.is_running():
            raise StackNotRunning(
                "TXSTREAM_KAFKA_BOOTSTRAP is not set and the embedded Kafka broker is not running: "
                "run `txstream up`, or set TXSTREAM_KAFKA_BOOTSTRAP to your brokers."
            )
        return self.broker.bootstrap
