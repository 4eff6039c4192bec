"""Resources as the code location builds them from the (test session's) settings, with some fields changed."""

from __future__ import annotations

from typing import Any, TypeVar

import dagster as dg

from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.resources import KafkaResource
from txstream_dagster.resources.build import event_log, spark
from txstream_dagster.settings import load_settings

R = TypeVar("R", bound=dg.ConfigurableResource)


def with_fields(resource: R, **changes: Any) -> R:
    fields = {name: getattr(resource, name) for name in type(resource).model_fields}
    return type(resource)(**{**fields, **changes})


def spark_resource(**changes: Any) -> SparkResource:
    return with_fields(spark(load_settings()), **changes)


def kafka_resource(**changes: Any) -> KafkaResource:
    return with_fields(event_log(load_settings()), **changes)
