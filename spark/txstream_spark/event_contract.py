"""The Kafka message contract between every producer and the stream. One source of truth.

One message per Stripe object version:
- key: the object's id (UTF-8), so every version of an object lands on one partition, in order;
- value: the object's JSON exactly as Stripe returns it (no envelope);
- headers: the object type, the source, the contract version, and when this version was observed.
"""

from __future__ import annotations

import re

SCHEMA_VERSION = "1"

HEADER_OBJECT_TYPE = "stripe-object"       # charge | refund | dispute
HEADER_SOURCE = "txstream-source"          # stripe | synthetic
HEADER_SCHEMA_VERSION = "txstream-schema-version"
HEADER_EVENT_TIME = "txstream-event-time"  # epoch milliseconds, decimal ASCII

OBJECT_TYPES = ("charge", "refund", "dispute")
SOURCES = ("stripe", "synthetic")

# Kafka's own rule for topic names (kafka.common.internals.Topic). Checked wherever a topic name
# enters txstream: TXSTREAM_TOPIC, the kafka resource's run config, the Spark job's --topic.
TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")

# Stripe caps API objects far below this; anything larger is not a Stripe object.
MAX_MESSAGE_BYTES = 1024 * 1024


def message_headers(object_type: str, source: str, event_time_ms: int) -> list[tuple[str, bytes]]:
    if object_type not in OBJECT_TYPES:
        raise ValueError(f"object type {object_type!r} is not one of {OBJECT_TYPES}")
    if source not in SOURCES:
        raise ValueError(f"source {source!r} is not one of {SOURCES}")
    return [
        (HEADER_OBJECT_TYPE, object_type.encode()),
        (HEADER_SOURCE, source.encode()),
        (HEADER_SCHEMA_VERSION, SCHEMA_VERSION.encode()),
        (HEADER_EVENT_TIME, str(int(event_time_ms)).encode()),
    ]


def check_topic_name(name: str, given_as: str) -> str:
    """`name`, if Kafka accepts it as a topic name; otherwise a ValueError naming where it was given."""
    if not TOPIC_NAME.fullmatch(name) or name in {".", ".."}:
        raise ValueError(
            f"{given_as} {name!r} is not a valid Kafka topic name: use 1-249 of [a-zA-Z0-9._-], not '.' or '..'"
        )
    return name
