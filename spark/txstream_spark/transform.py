"""Kafka messages → typed `raw.transactions` rows or quarantine rows. Pure: no Spark, no I/O.

`parse_message` decides for one message; `transform_batch` applies it to an
Arrow record batch of Spark's Kafka source (what `mapInArrow` hands us) and returns
one batch holding both kinds of row, told apart by `quarantine_reason`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from txstream_spark.event_contract import (
    HEADER_EVENT_TIME,
    HEADER_OBJECT_TYPE,
    HEADER_SOURCE,
    MAX_MESSAGE_BYTES,
    OBJECT_TYPES,
    SOURCES,
)

CURRENCY_CODE = re.compile(r"^[a-z]{3}$")
# Stripe was founded in 2010; anything outside this window is not a real `created`.
EARLIEST_CREATED = int(datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp())
LATEST_CREATED = int(datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp())
UTC_MICROS = pa.timestamp("us", tz="UTC")

# The rows of Spark's `kafka` source (with includeHeaders), as Arrow record batches.
KAFKA_MESSAGE_SCHEMA = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp", UTC_MICROS),
        ("timestampType", pa.int32()),
        # Spark names a list's items "element".
        ("headers", pa.list_(pa.field("element", pa.struct([("key", pa.string()), ("value", pa.binary())])))),
    ]
)

# Everything the sink writes, in one schema: a row is quarantined when quarantine_reason is set.
OUTPUT_SCHEMA = pa.schema(
    [
        ("object_id", pa.string()),
        ("object_type", pa.string()),
        ("amount", pa.int64()),
        ("currency", pa.string()),
        ("status", pa.string()),
        ("created_at", UTC_MICROS),
        ("charge_id", pa.string()),
        ("customer_id", pa.string()),
        ("livemode", pa.bool_()),
        ("source", pa.string()),
        ("event_time", UTC_MICROS),
        ("payload", pa.string()),
        ("kafka_topic", pa.string()),
        ("kafka_topic_id", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("kafka_timestamp", UTC_MICROS),
        ("kafka_key", pa.binary()),
        ("raw_value", pa.binary()),
        ("headers", pa.string()),
        ("quarantine_reason", pa.string()),
        ("quarantine_detail", pa.string()),
    ]
)
TYPED_COLUMNS = [
    "object_id", "object_type", "amount", "currency", "status", "created_at", "charge_id",
    "customer_id", "livemode", "source", "event_time", "payload",
]


class Rejected(Exception):
    """Why a message cannot become a row: `reason` for machines, `detail` for people."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class StripeObjectRow:
    object_id: str
    object_type: str
    amount: int
    currency: str
    status: str | None
    created_at: datetime
    charge_id: str | None
    customer_id: str | None
    livemode: bool | None
    source: str
    event_time: datetime
    payload: bytes  # the message value, exactly as sent


def _field(obj: dict, name: str, kinds: type | tuple[type, ...], kind_name: str, required: bool = True) -> Any:
    value = obj.get(name)
    if value is None:
        if required:
            raise Rejected("missing_field", f"{obj.get('object', 'object')} has no {name!r}")
        return None
    # bool is an int in Python; Stripe never sends a bool where it means a number.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        raise Rejected(
            "wrong_type", f"{name!r} must be {kind_name}, got {type(value).__name__} {_preview(value)}"
        )
    return value


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _id_of(value: Any, name: str) -> str | None:
    """Stripe references are an id, or the expanded object carrying one."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    raise Rejected("wrong_type", f"{name!r} must be an id or an expanded object, got {_preview(value)}")


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)


def parse_message(value: bytes | None, headers: dict[str, bytes], kafka_timestamp: datetime | None) -> StripeObjectRow:
    """One Kafka message → one typed row, or `Rejected` saying what is wrong with it."""
    if value is None:
        raise Rejected("empty_value", "the message has no value (a tombstone?); Stripe objects are never empty")
    if len(value) > MAX_MESSAGE_BYTES:
        raise Rejected("oversized", f"{len(value)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit for a Stripe object")
    try:
        obj = orjson.loads(value)  # also rejects invalid UTF-8
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise Rejected("invalid_utf8", f"byte {bad.start} is not valid UTF-8 ({bad.reason})") from None
        raise Rejected("invalid_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise Rejected("not_an_object", f"the value is a JSON {type(obj).__name__}, not an object")
    # PostgreSQL's jsonb cannot store NUL characters.
    if b"\\u0000" in value:
        raise Rejected("unsupported_json", "contains \\u0000, which PostgreSQL jsonb cannot store")

    object_type = obj.get("object")
    if object_type not in OBJECT_TYPES:
        raise Rejected(
            "unknown_object_type", f"'object' is {_preview(object_type)}; expected one of {', '.join(OBJECT_TYPES)}"
        )
    declared = headers.get(HEADER_OBJECT_TYPE)
    if declared is not None and declared.decode("utf-8", "replace") != object_type:
        raise Rejected(
            "type_mismatch",
            f"header {HEADER_OBJECT_TYPE}={declared.decode('utf-8', 'replace')!r} but the object is a {object_type}",
        )

    object_id = _field(obj, "id", str, "a string")
    if not object_id:
        raise Rejected("missing_field", f"{object_type} has an empty 'id'")
    amount = _field(obj, "amount", int, "an integer (minor units)")
    if amount < 0:
        raise Rejected("invalid_value", f"'amount' is negative ({amount})")
    currency = _field(obj, "currency", str, "a string")
    if not CURRENCY_CODE.match(currency):
        raise Rejected("invalid_value", f"'currency' {currency!r} is not a lower-case ISO 4217 code")
    created = _field(obj, "created", int, "an integer (Unix seconds)")
    if not EARLIEST_CREATED <= created < LATEST_CREATED:
        raise Rejected("invalid_value", f"'created' {created} is not a plausible Unix timestamp")
    # Stripe's Refund object has no `livemode`; charges and disputes always do.
    livemode = _field(obj, "livemode", bool, "a boolean", required=object_type != "refund")
    status = _field(obj, "status", str, "a string", required=False)

    customer_id = _id_of(obj.get("customer"), "customer")
    if object_type == "charge":
        charge_id = object_id
    else:
        charge_id = _id_of(obj.get("charge"), "charge")
        if charge_id is None:
            raise Rejected("missing_field", f"{object_type} has no 'charge'")

    source = headers.get(HEADER_SOURCE, b"stripe").decode("utf-8", "replace")
    if source not in SOURCES:
        raise Rejected("invalid_header", f"header {HEADER_SOURCE}={source!r}; expected one of {', '.join(SOURCES)}")
    event_time = _event_time(headers.get(HEADER_EVENT_TIME), kafka_timestamp, created)

    return StripeObjectRow(
        object_id=object_id,
        object_type=object_type,
        amount=amount,
        currency=currency,
        status=status,
        created_at=_utc(created),
        charge_id=charge_id,
        customer_id=customer_id,
        livemode=livemode,
        source=source,
        event_time=event_time,
        payload=value,
    )


def _event_time(header: bytes | None, kafka_timestamp: datetime | None, created: int) -> datetime:
    """When this version was observed: the header, else the broker's timestamp, else `created`."""
    if header is not None:
        try:
            return _utc(int(header) / 1000)
        except (ValueError, OverflowError, OSError):
            raise Rejected(
                "invalid_header", f"header {HEADER_EVENT_TIME}={header[:30]!r} is not epoch milliseconds"
            ) from None
    return kafka_timestamp or _utc(created)


def _header_dicts(batch: pa.RecordBatch) -> list[dict[str, bytes]]:
    """Per row, its headers as a dict; built from the flat child arrays (far cheaper than to_pylist)."""
    if "headers" not in batch.schema.names:
        return [{} for _ in range(len(batch))]
    headers = batch.column("headers")
    offsets = headers.offsets.to_pylist()
    entries = headers.flatten()
    keys = entries.field("key").to_pylist()
    values = entries.field("value").to_pylist()
    valid = headers.is_valid().to_pylist()
    return [
        dict(zip(keys[offsets[i]:offsets[i + 1]], values[offsets[i]:offsets[i + 1]])) if valid[i] else {}
        for i in range(len(batch))
    ]


def _only_where(mask: pa.Array, column: pa.Array) -> pa.Array:
    return pc.if_else(mask, column, pa.nulls(len(column), column.type))


def transform_batch(batch: pa.RecordBatch, topic_id: str = "") -> pa.RecordBatch:
    """Kafka source rows (KAFKA_MESSAGE_SCHEMA) → OUTPUT_SCHEMA rows, stamped with the topic's id.

    Only what must be decided per message runs in Python; the Kafka columns and
    the payload bytes pass through as Arrow arrays, untouched.
    """
    rows = len(batch)
    values = batch.column("value").to_pylist()
    kafka_timestamps = batch.column("timestamp").to_pylist()
    headers = _header_dicts(batch)
    typed: dict[str, list] = {name: [None] * rows for name in TYPED_COLUMNS if name != "payload"}
    reasons: list[str | None] = [None] * rows
    details: list[str | None] = [None] * rows

    for i in range(rows):
        try:
            row = parse_message(values[i], headers[i], kafka_timestamps[i])
        except Rejected as rejection:
            reasons[i] = rejection.reason
            details[i] = rejection.detail
            continue
        for name, column in typed.items():
            column[i] = getattr(row, name)

    reason_array = pa.array(reasons, pa.string())
    quarantined = reason_array.is_valid()
    accepted = pc.invert(quarantined)
    columns = {
        **{name: pa.array(column, OUTPUT_SCHEMA.field(name).type) for name, column in typed.items()},
        # Accepted values are valid UTF-8 JSON (orjson checked), so the bytes are the payload text.
        "payload": _only_where(accepted, batch.column("value")).cast(pa.string()),
        "kafka_topic": batch.column("topic"),
        "kafka_topic_id": pa.repeat(pa.scalar(topic_id, pa.string()), rows),
        "kafka_partition": batch.column("partition"),
        "kafka_offset": batch.column("offset"),
        "kafka_timestamp": batch.column("timestamp").cast(UTC_MICROS),
        "kafka_key": _only_where(quarantined, batch.column("key")),
        "raw_value": _only_where(quarantined, batch.column("value")),
        "headers": pa.array([_headers_json(headers[i]) if reasons[i] else None for i in range(rows)], pa.string()),
        "quarantine_reason": reason_array,
        "quarantine_detail": pa.array(details, pa.string()),
    }
    return pa.RecordBatch.from_arrays([columns[name] for name in OUTPUT_SCHEMA.names], schema=OUTPUT_SCHEMA)


def _headers_json(headers: dict[str, bytes]) -> str:
    return orjson.dumps({k: (v.decode("utf-8", "replace") if v is not None else None) for k, v in headers.items()}).decode()


def transform_batches(batches, topic_id: str = ""):
    """`mapInArrow` entry point (with `functools.partial` for the topic id)."""
    for batch in batches:
        yield transform_batch(batch, topic_id)
