"""The Kafka message contract between every producer and the stream. One source of truth.

One message per Stripe object version:
- key: the object's id (UTF-8), so every version of an object lands on one partition, in order;
- value: the object's JSON exactly as Stripe returns it (no envelope);
- headers: the object type, the source, the contract version, when this version was observed,
  (when Stripe said) the API version its JSON is shaped by, and for a balance transaction
  listed under a payout, that payout's id.
"""

from __future__ import annotations

import re

SCHEMA_VERSION = "1"

HEADER_OBJECT_TYPE = "stripe-object"  # one of OBJECT_TYPES
HEADER_SOURCE = "txstream-source"  # stripe | synthetic
HEADER_SCHEMA_VERSION = "txstream-schema-version"
HEADER_EVENT_TIME = "txstream-event-time"  # epoch milliseconds, decimal ASCII
HEADER_API_VERSION = "stripe-api-version"  # the Event's api_version, e.g. 2024-06-20; absent when unknown
# A balance transaction does not say which payout paid it out: Stripe answers that by listing
# `GET /v1/balance_transactions?payout=po_…`. A producer that lists it so sends this header.
HEADER_PAYOUT = "txstream-payout"

OBJECT_TYPES = ("charge", "refund", "dispute", "balance_transaction", "payout")
SOURCES = ("stripe", "synthetic")

# Kafka's own rule for topic names (kafka.common.internals.Topic). Checked wherever a topic name
# enters txstream: TXSTREAM_TOPIC, the kafka resource's run config, the Spark job's --topic.
TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")

# Stripe caps API objects far below this; anything larger is not a Stripe object.
MAX_MESSAGE_BYTES = 1024 * 1024
# Stripe's API versions are a release date, since 2024 with the release's name (2025-03-31.basil);
# the contract accepts any short token of that alphabet, so a new naming scheme does not stop producers.
API_VERSION = re.compile(r"[0-9A-Za-z._-]{1,64}")


def message_headers(
    object_type: str,
    source: str,
    event_time_ms: int,
    api_version: str | None = None,
    payout_id: str | None = None,
) -> list[tuple[str, bytes]]:
    if object_type not in OBJECT_TYPES:
        raise ValueError(f"object type {object_type!r} is not one of {OBJECT_TYPES}")
    if source not in SOURCES:
        raise ValueError(f"source {source!r} is not one of {SOURCES}")
    if api_version is not None and not API_VERSION.fullmatch(api_version):
        raise ValueError(f"Stripe API version {api_version!r} is not like 2024-06-20 or 2025-03-31.basil")
    if payout_id is not None and (object_type != "balance_transaction" or not payout_id.startswith("po_")):
        raise ValueError(f"only a balance transaction is paid out in a payout (po_…), not {object_type} {payout_id!r}")
    headers = [
        (HEADER_OBJECT_TYPE, object_type.encode()),
        (HEADER_SOURCE, source.encode()),
        (HEADER_SCHEMA_VERSION, SCHEMA_VERSION.encode()),
        (HEADER_EVENT_TIME, str(int(event_time_ms)).encode()),
    ]
    if api_version is not None:
        headers.append((HEADER_API_VERSION, api_version.encode()))
    if payout_id is not None:
        headers.append((HEADER_PAYOUT, payout_id.encode()))
    return headers


def check_topic_name(name: str, given_as: str) -> str:
    """`name`, if Kafka accepts it as a topic name; otherwise a ValueError naming where it was given."""
    if not TOPIC_NAME.fullmatch(name) or name in {".", ".."}:
        raise ValueError(
            f"{given_as} {name!r} is not a valid Kafka topic name: use 1-249 of [a-zA-Z0-9._-], not '.' or '..'"
        )
    return name
