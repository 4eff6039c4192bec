"""The PostgreSQL logins txstream uses, each allowed only its own job (migration 0007)."""

from __future__ import annotations

from enum import StrEnum


class Login(StrEnum):
    OWNER = "owner"  # the user in TXSTREAM_POSTGRES_URL: runs migrations, nothing else
    WRITER = "txstream_writer"  # the stream, forex rates, Stripe cursors: raw and ops
    TRANSFORMER = "txstream_transformer"  # dbt: reads raw and ops, owns the marts
    READER = "txstream_reader"  # dashboards and reports: marts and monitoring, read-only

    @property
    def password_variable(self) -> str:
        return f"TXSTREAM_{self.name}_PASSWORD"

    @property
    def password_field(self) -> str:
        """Its password's field in Settings and in the embedded server's credentials."""
        return f"{self.name.lower()}_password"


PIPELINE_LOGINS = (Login.WRITER, Login.TRANSFORMER, Login.READER)
