"""Dagster resources shared by the stages: one small class per external system, plain configured fields.

`build.py` builds every resource of the code location (these and the stages' own) from the settings.
"""

from txstream_dagster.resources.kafka import KafkaResource
from txstream_dagster.resources.postgres import PostgresResource

__all__ = ["KafkaResource", "PostgresResource"]
