"""`txstream up|down|status`: the embedded services a machine with no configuration runs.

Only what the settings leave unconfigured is embedded: with TXSTREAM_POSTGRES_URL
set, PostgreSQL is never started here; with TXSTREAM_KAFKA_BOOTSTRAP set, Kafka is not.
"""

from __future__ import annotations

from txstream_dagster.db.logins import Login
from txstream_dagster.local_stack.embedded_kafka import KafkaNode, Retention
from txstream_dagster.local_stack.embedded_postgres import EmbeddedPostgres
from txstream_dagster.settings import Settings


class StackNotRunning(RuntimeError):
    pass


class LocalStack:
    def __init__(self, settings: Settings):
        self.settings = settings
        root = settings.data_dir / "stack"
        self.postgres = EmbeddedPostgres(root / "postgres", settings.local_postgres_port)
        self.kafka = KafkaNode(
            root / "kafka",
            settings.jvm_lib_dir,
            port=settings.local_kafka_port,
            controller_port=settings.local_kafka_controller_port,
            retention=Retention(settings.local_kafka_retention_hours, settings.local_kafka_retention_bytes),
        )

    @property
    def embeds_postgres(self) -> bool:
        return self.settings.postgres_url is None

    @property
    def embeds_kafka(self) -> bool:
        return not self.settings.kafka_bootstrap

    def up(self) -> list[str]:
        """Start what is embedded; returns what was done, one line each. Safe to call twice."""
        done = []
        if self.embeds_postgres:
            started = self.postgres.start()
            done.append(f"PostgreSQL {'started' if started else 'already running'} on 127.0.0.1:{self.postgres.running_port()}")
        if self.embeds_kafka:
            started = self.kafka.start()
            done.append(f"Kafka {'started' if started else 'already running'} on {self.kafka.bootstrap}")
        return done

    def down(self) -> list[str]:
        done = []
        if self.kafka.stop():
            done.append("Kafka stopped")
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

    def login_password(self, login: Login) -> str | None:
        """The password `login` signs in with: its TXSTREAM_*_PASSWORD, else the embedded server's own."""
        configured = getattr(self.settings, login.password_field)
        if configured is not None:
            return configured.get_secret_value()
        return self.postgres.login_password(login) if self.embeds_postgres else None

    def kafka_bootstrap(self) -> str:
        if not self.embeds_kafka:
            return self.settings.kafka_bootstrap
        if not self.kafka.is_running():
            raise StackNotRunning(
                "TXSTREAM_KAFKA_BOOTSTRAP is not set and the embedded Kafka is not running: "
                "run `txstream up`, or set TXSTREAM_KAFKA_BOOTSTRAP to your brokers."
            )
        return self.kafka.bootstrap
