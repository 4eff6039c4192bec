"""Dagster resources: one small class per external system, built from the settings."""

from __future__ import annotations

import os

import dagster as dg

from txstream_dagster.resources.kafka import KafkaResource
from txstream_dagster.resources.postgres import PostgresResource
from txstream_dagster.settings import get_settings

__all__ = ["KafkaResource", "PostgresResource", "shared_resources"]


def env_var_if_set(name: str) -> dg.EnvVar | None:
    """Secrets reach resources as Dagster EnvVars (never literals in config or the UI); unset → embedded."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def shared_resources() -> dict[str, dg.ConfigurableResource]:
    settings = get_settings()
    return {
        "postgres": PostgresResource(url=env_var_if_set("TXSTREAM_POSTGRES_URL")),
        "kafka": KafkaResource(bootstrap=env_var_if_set("TXSTREAM_KAFKA_BOOTSTRAP"), topic=settings.topic),
    }
