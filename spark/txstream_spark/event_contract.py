"""The Kafka message contract between every producer and the stream. One source of truth.

One message per Stripe object version:
- key: the object's id (UTF-8), so every version of an object lands on one partition, in order;
- value: the object's JSON exactly as Stripe returns it (no envelope);
- headers: the object type, the source, the contract version, and when this version was observed.
"""

from __future__ import annotations

SCHEMA_VERSION = "1"

HEADER_OBJECT_TYPE = "stripe-object"       # charge | refund | dispute
HEADER_SOURCE = "txstream-source"          # stripe | synthetic
HEADER_SCHEMA_VERSION = "txstream-schema-version"
HEADER_EVENT_TIME = "txstream-event-time"  # epoch milliseconds, decimal ASCII

OBJECT_TYPES = ("charge", "refund", "dispute")
SOURCES = ("stripe", "synthetic")

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
