"""The embedded services a machine with no configuration runs, started by `txstream up`.

Only what the settings leave unconfigured is embedded: with TXSTREAM_POSTGRES_URL
set, PostgreSQL is never started here; with TXSTREAM_KAFKA_BOOTSTRAP set, Kafka is not.
Where they listen and the logins' passwords are fixed before they start (ports from
the settings, passwords generated once into the data dir), so the resources can be
built from them whether or not they are running yet.
"""

from __future__ import annotations

from txstream_dagster.db.logins import Login
from txstream_dagster.dev.embedded_kafka import KafkaNode, Retention
from txstream_dagster.dev.embedded_postgres import EmbeddedPostgres
from txstream_dagster.settings import Settings


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

    def up(self) -> list[str]:
        """Start what is embedded; returns what was done, one line each. Safe to call twice."""
        done = []
        if self.settings.embeds_postgres:
            started = self.postgres.start()
            done.append(
                f"PostgreSQL {'started' if started else 'already running'} on 127.0.0.1:{self.postgres.running_port()}"
            )
        if self.settings.embeds_kafka:
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
        """The embedded server's owner URL; libpq reads the passwords from its password file."""
        return self.postgres.client_url()

    def login_password(self, login: Login) -> str:
        """The password the embedded server gives `login` (generated on first use)."""
        return self.postgres.login_password(login)

    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap
