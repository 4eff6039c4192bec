"""Every resource txstream uses, built once from the settings.

Each external system is either embedded (the `local` profile: nothing configured, so the
services `txstream up` starts on this machine) or external (TXSTREAM_POSTGRES_URL,
TXSTREAM_KAFKA_BOOTSTRAP: what a deployment configures), the way Dagster's reference
projects pick a resource set per environment. The embedded services are resolved here,
once; resources never look at the settings or the local stack themselves.

Secrets reach resources as Dagster `EnvVar`s wherever the environment holds them, so
the UI and run config show a variable's name, never its value; the embedded server's
passwords stay in its libpq password file and are named by path only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource
from pydantic import SecretStr

from txstream_dagster.db.logins import PIPELINE_LOGINS, Login
from txstream_dagster.defs.alerting.resources import WEBHOOK_URL_SETTING, AlertWebhookResource
from txstream_dagster.defs.dbt.project import txstream_dbt_project
from txstream_dagster.defs.dbt.resources import dbt_cli_resource, dbt_profile, write_profiles_dir
from txstream_dagster.defs.forex.resources import forex_resource
from txstream_dagster.defs.reporting.resources import ReportFolder
from txstream_dagster.defs.retention.resources import RetentionPolicy
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.defs.stripe_source.resources import StripeResource
from txstream_dagster.dev.stack import LocalStack
from txstream_dagster.resources.kafka import KafkaResource
from txstream_dagster.resources.postgres import PostgresResource
from txstream_dagster.settings import Settings

POSTGRES_URL = "TXSTREAM_POSTGRES_URL"
KAFKA_BOOTSTRAP = "TXSTREAM_KAFKA_BOOTSTRAP"
STRIPE_API_KEY = ("STRIPE_API_KEY", "TXSTREAM_STRIPE_API_KEY")


def build_resources(settings: Settings) -> dict[str, Any]:
    """Every resource key the code location's assets, checks and sensors ask for, secrets as EnvVars."""
    return {
        "postgres": warehouse(settings, env_vars=True),
        "kafka": event_log(settings, env_vars=True),
        "spark": spark(settings),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
        "stripe": stripe_account(settings, env_vars=True),
        "forex": forex_resource(settings),
        "dbt": dbt_cli(settings),
        "reports": report_folder(settings),
        "retention": retention_policy(settings),
        "alert_webhook": alert_webhook(settings, env_vars=True),
    }


# The functions below build one resource each; the CLI calls them directly (env_vars=False: outside
# Dagster an EnvVar is never resolved, so a command gets the values themselves).


def warehouse(settings: Settings, *, env_vars: bool = False) -> PostgresResource:
    if settings.embeds_postgres:
        return PostgresResource(url=LocalStack(settings).postgres_url(), embedded=True)
    passwords = {
        login.password_field: _secret(getattr(settings, login.password_field), login.password_variable, env_vars)
        for login in PIPELINE_LOGINS
    }
    return PostgresResource(url=_secret(settings.postgres_url, POSTGRES_URL, env_vars), **passwords)


def login_passwords(settings: Settings) -> dict[Login, str]:
    """The password each pipeline login is given by `txstream migrate`: the TXSTREAM_*_PASSWORD values,
    and for the embedded PostgreSQL, its own generated ones where those are unset."""
    stack = LocalStack(settings) if settings.embeds_postgres else None
    passwords = {}
    for login in PIPELINE_LOGINS:
        configured = getattr(settings, login.password_field)
        if configured is not None:
            passwords[login] = configured.get_secret_value()
        elif stack is not None:
            passwords[login] = stack.login_password(login)
    return passwords


def event_log(settings: Settings, *, env_vars: bool = False) -> KafkaResource:
    embedded = settings.embeds_kafka
    bootstrap = LocalStack(settings).kafka_bootstrap() if embedded else settings.kafka_bootstrap
    assert bootstrap is not None  # set when Kafka is not embedded
    return KafkaResource(
        bootstrap=dg.EnvVar(KAFKA_BOOTSTRAP) if env_vars and os.environ.get(KAFKA_BOOTSTRAP) else bootstrap,
        topic=settings.topic,
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
        compression=settings.producer_compression,
        embedded=embedded,
    )


def spark(settings: Settings) -> SparkResource:
    return SparkResource(
        master=settings.spark_master,
        jvm_dir=str(settings.jvm_lib_dir),
        max_offsets_per_trigger=settings.spark_max_offsets_per_trigger,
        starting_offsets=settings.stream_starting_offsets,
        fail_on_data_loss=settings.stream_fail_on_data_loss,
        mode=settings.stream_mode,
        trigger_interval=settings.stream_trigger_interval,
        checkpoint_root=settings.checkpoint_root,
        work_dir=str(settings.data_dir / "spark"),
    )


def stripe_account(settings: Settings, *, env_vars: bool = False) -> StripeResource:
    key = settings.stripe_api_key
    variable = next((name for name in STRIPE_API_KEY if os.environ.get(name)), STRIPE_API_KEY[0])
    return StripeResource(
        api_key=_secret(key, variable, env_vars),
        api_base=settings.stripe_api_base,
        backfill_from=settings.stripe_backfill_from.isoformat() if settings.stripe_backfill_from else None,
    )


def dbt_cli(settings: Settings) -> DbtCliResource:
    return dbt_cli_resource(txstream_dbt_project(), dbt_profiles_dir(settings))


def dbt_profiles_dir(settings: Settings) -> Path:
    """`<data_dir>/dbt`, holding the profile dbt runs with (rewritten each time: the settings may have changed)."""
    return write_profiles_dir(settings.data_dir / "dbt", transformer_profile(settings))


def transformer_profile(settings: Settings) -> dict[str, Any]:
    """dbt's profile: the warehouse's address, signing in as the transformer.

    With an external warehouse the password stays in the environment: the profile names the variable
    (`env_var()`, resolved by dbt in its own process), so it is never written to disk, and every process
    sharing the data dir writes the same file whichever of them holds the secret."""
    if settings.embeds_postgres:
        stack = LocalStack(settings)
        return dbt_profile(stack.postgres_url(), stack.login_password(Login.TRANSFORMER))
    password = f"{{{{ env_var('{Login.TRANSFORMER.password_variable}', '') }}}}"
    assert settings.postgres_url is not None  # not embeds_postgres
    return dbt_profile(settings.postgres_url.get_secret_value(), password)


def report_folder(settings: Settings) -> ReportFolder:
    return ReportFolder(path=str(settings.data_dir / "reports"))


def alert_webhook(settings: Settings, *, env_vars: bool = False) -> AlertWebhookResource:
    return AlertWebhookResource(url=_secret(settings.alert_webhook_url, WEBHOOK_URL_SETTING, env_vars))


def retention_policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        reconcile_days=settings.reconcile_days,
        ops_retention_days=settings.ops_retention_days,
        quarantine_retention_days=settings.quarantine_retention_days,
    )


def _secret(value: SecretStr | None, variable: str, env_vars: bool) -> Any:
    """With `env_vars`, a Dagster EnvVar when the environment holds `variable`; otherwise the value (one only a
    `.env` file gave is read by the settings, not put in the environment); unset → None."""
    if env_vars and os.environ.get(variable):
        return dg.EnvVar(variable)
    return value.get_secret_value() if value is not None else None
