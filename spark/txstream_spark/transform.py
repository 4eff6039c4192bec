"""Kafka messages → typed `raw.transactions` rows or quarantine rows. Pure: no Spark, no I/O.

`parse_message` decides for one message; `transform_batch` applies it to an
Arrow record batch of Spark's Kafka source (what `mapInArrow` hands us) and returns
one batch holding both kinds of row, told apart by `quarantine_reason`.

No message can stop the stream: every per-message step runs inside one boundary
in `transform_batch` that turns any exception into a quarantine row with a
reason, and every value is bounded before it reaches Arrow or PostgreSQL (ids
that fit a btree index, amounts that fit bigint, times PostgreSQL and Python
can both hold, no NUL characters in text). Kafka Connect's dead-letter queue
makes the same promise for conversion errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from txstream_spark.event_contract import (
    API_VERSION,
    HEADER_API_VERSION,
    HEADER_EVENT_TIME,
    HEADER_OBJECT_TYPE,
    HEADER_PAYOUT,
    HEADER_SOURCE,
    MAX_MESSAGE_BYTES,
    OBJECT_TYPES,
    SOURCES,
)

CURRENCY_CODE = re.compile(r"^[a-z]{3}$")
# Stripe was founded in 2010; anything outside this window is not a real `created` (or event time).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
EARLIEST_CREATED = int(EARLIEST.timestamp())
LATEST_CREATED = int(LATEST.timestamp())
# A version stamped later than this after the stream saw it would win every later upsert of its
# object and freeze it: such a message is quarantined (event_time_in_future), not clamped.
EVENT_TIME_FUTURE_TOLERANCE = timedelta(minutes=15)
# Stripe ids are short ASCII (ch_…, 27 characters); raw.transactions indexes them, and a btree
# entry must stay under ~2.7 kB, so anything longer is not an id.
MAX_ID_LENGTH = 255
MAX_STATUS_LENGTH = 64
# raw.transactions.amount is a bigint.
MAX_AMOUNT = 2**63 - 1
# Only a balance transaction's amount, fee and net may be negative (money out of the balance).
SIGNED_AMOUNT_TYPES = frozenset({"balance_transaction"})
# Stripe's Refund and BalanceTransaction objects carry no `livemode`; the others always do.
WITHOUT_LIVEMODE = frozenset({"refund", "balance_transaction"})
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
        ("api_version", pa.string()),
        ("payout_id", pa.string()),
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
    "object_id",
    "object_type",
    "amount",
    "currency",
    "status",
    "created_at",
    "charge_id",
    "customer_id",
    "livemode",
    "source",
    "event_time",
    "api_version",
    "payout_id",
    "payload",
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
    api_version: str | None  # the Stripe API version the JSON is shaped by, when the producer knew it
    payout_id: str | None  # a balance transaction: the payout it was listed under (HEADER_PAYOUT)
    payload: bytes  # the message value, exactly as sent


def _field(obj: dict, name: str, kinds: type | tuple[type, ...], kind_name: str, required: bool = True) -> Any:
    value = obj.get(name)
    if value is None:
        if required:
            raise Rejected("missing_field", f"{obj.get('object', 'object')} has no {name!r}")
        return None
    # bool is an int in Python; Stripe never sends a bool where it means a number.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        raise Rejected("wrong_type", f"{name!r} must be {kind_name}, got {type(value).__name__} {_preview(value)}")
    return value


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _id_of(value: Any, name: str) -> str | None:
    """Stripe references are an id, or the expanded object carrying one."""
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        value = value["id"]
    if value is None:
        return None
    if not isinstance(value, str):
        raise Rejected("wrong_type", f"{name!r} must be an id or an expanded object, got {_preview(value)}")
    return _bounded(value, name, MAX_ID_LENGTH)


def _bounded(text: str, name: str, max_length: int) -> str:
    if len(text) > max_length:
        raise Rejected("invalid_value", f"{name!r} is {len(text)} characters long; at most {max_length} is an id")
    return text


def _header(headers: dict[str, bytes | None], name: str) -> str | None:
    """A header's text; absent → None; present without a value, or not UTF-8 → invalid_header."""
    if name not in headers:
        return None
    value = headers[name]
    if value is None:
        raise Rejected("invalid_header", f"header {name} has no value (null)")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("invalid_header", f"header {name}={value[:30]!r} is not UTF-8") from None


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)


def parse_message(
    value: bytes | None,
    headers: dict[str, bytes | None],
    kafka_timestamp: datetime | None,
    now: datetime | None = None,
) -> StripeObjectRow:
    """One Kafka message → one typed row, or `Rejected` saying what is wrong with it.

    `now` is when the stream sees the message (an event time beyond it plus the tolerance is rejected)."""
    if value is None:
        raise Rejected("empty_value", "the message has no value (a tombstone?); Stripe objects are never empty")
    if len(value) > MAX_MESSAGE_BYTES:
        raise Rejected(
            "oversized", f"{len(value)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit for a Stripe object"
        )
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
    declared = _header(headers, HEADER_OBJECT_TYPE)
    if declared is not None and declared != object_type:
        raise Rejected(
            "type_mismatch", f"header {HEADER_OBJECT_TYPE}={_preview(declared)} but the object is a {object_type}"
        )

    object_id = _bounded(_field(obj, "id", str, "a string"), "id", MAX_ID_LENGTH)
    if not object_id:
        raise Rejected("missing_field", f"{object_type} has an empty 'id'")
    amount = _field(obj, "amount", int, "an integer (minor units)")
    if amount < 0 and object_type not in SIGNED_AMOUNT_TYPES:
        raise Rejected("invalid_value", f"'amount' is negative ({_preview(amount)})")
    if not -MAX_AMOUNT <= amount <= MAX_AMOUNT:
        raise Rejected("invalid_value", f"'amount' {_preview(amount)} is larger than a bigint holds ({MAX_AMOUNT})")
    currency = _field(obj, "currency", str, "a string")
    if not CURRENCY_CODE.match(currency):
        raise Rejected("invalid_value", f"'currency' {currency!r} is not a lower-case ISO 4217 code")
    created = _field(obj, "created", int, "an integer (Unix seconds)")
    if not EARLIEST_CREATED <= created < LATEST_CREATED:
        raise Rejected("invalid_value", f"'created' {created} is not a plausible Unix timestamp")
    livemode = _field(obj, "livemode", bool, "a boolean", required=object_type not in WITHOUT_LIVEMODE)
    # Stripe's Refund.status is nullable; a charge or a dispute always has one.
    status = _field(obj, "status", str, "a string", required=object_type != "refund")
    if status is not None:
        _bounded(status, "status", MAX_STATUS_LENGTH)
    _check_fields_the_marts_type(obj, object_type)

    customer_id = _id_of(obj.get("customer"), "customer")
    charge_id: str | None = None
    if object_type == "charge":
        charge_id = object_id
    elif object_type in ("refund", "dispute"):
        charge_id = _id_of(obj.get("charge"), "charge")
        if charge_id is None:
            raise Rejected("missing_field", f"{object_type} has no 'charge'")
    payout_id = _payout_id(_header(headers, HEADER_PAYOUT), object_type)

    source = _header(headers, HEADER_SOURCE) or "stripe"
    if source not in SOURCES:
        raise Rejected(
            "invalid_header", f"header {HEADER_SOURCE}={_preview(source)}; expected one of {', '.join(SOURCES)}"
        )
    api_version = _header(headers, HEADER_API_VERSION)
    if api_version is not None and not API_VERSION.fullmatch(api_version):
        raise Rejected(
            "invalid_header", f"header {HEADER_API_VERSION}={_preview(api_version)} is not a Stripe API version"
        )
    event_time = _event_time(_header(headers, HEADER_EVENT_TIME), kafka_timestamp, created)
    now = now or datetime.now(UTC)
    if event_time > now + EVENT_TIME_FUTURE_TOLERANCE:
        raise Rejected(
            "event_time_in_future",
            f"observed at {event_time.isoformat()}, more than {EVENT_TIME_FUTURE_TOLERANCE} after the stream saw it "
            f"({now.isoformat(timespec='seconds')}): a version from the future would win every later update",
        )

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
        api_version=api_version,
        payout_id=payout_id,
        payload=value,
    )


def _payout_id(header: str | None, object_type: str) -> str | None:
    if header is None:
        return None
    if object_type != "balance_transaction":
        raise Rejected(
            "invalid_header", f"header {HEADER_PAYOUT} on a {object_type}: only balance transactions are paid out"
        )
    if not header.startswith("po_"):
        raise Rejected("invalid_header", f"header {HEADER_PAYOUT}={_preview(header)} is not a payout id (po_…)")
    return _bounded(header, HEADER_PAYOUT, MAX_ID_LENGTH)


def _minor_units(name: str, value: Any) -> None:
    _json_type(name, value, int, "an integer (minor units)")
    if not 0 <= value <= MAX_AMOUNT:
        raise Rejected("invalid_value", f"{name!r} {_preview(value)} is not an amount in minor units (0 to a bigint)")


def _signed_minor_units(name: str, value: Any) -> None:
    _json_type(name, value, int, "an integer (minor units)")
    if not -MAX_AMOUNT <= value <= MAX_AMOUNT:
        raise Rejected("invalid_value", f"{name!r} {_preview(value)} is not an amount in minor units (a bigint)")


def _exchange_rate(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected("wrong_type", f"{name!r} must be a number, got {type(value).__name__} {_preview(value)}")
    if not 0 < value < 1e12:
        raise Rejected("invalid_value", f"{name!r} {_preview(value)} is not an exchange rate (a positive number)")


def _fee_details(name: str, value: Any) -> None:
    _json_type(name, value, list, "a list")
    for i, item in enumerate(value):
        _json_object(f"{name}[{i}]", item)
        _signed_minor_units(f"{name}[{i}].amount", item.get("amount"))
        currency = item.get("currency")
        if not isinstance(currency, str) or not CURRENCY_CODE.match(currency):
            raise Rejected(
                "invalid_value", f"'{name}[{i}].currency' {_preview(currency)} is not a lower-case ISO 4217 code"
            )


def _boolean(name: str, value: Any) -> None:
    _json_type(name, value, bool, "a boolean")


def _json_object(name: str, value: Any) -> None:
    _json_type(name, value, dict, "an object")


def _risk_score(name: str, value: Any) -> None:
    _json_type(name, value, int, "an integer")
    if not 0 <= value <= 100:
        raise Rejected("invalid_value", f"{name!r} {_preview(value)} is not a Radar risk score (0-100)")


def _unix_time(name: str, value: Any) -> None:
    _json_type(name, value, int, "an integer (Unix seconds)")
    if not EARLIEST_CREATED <= value < LATEST_CREATED:
        raise Rejected("invalid_value", f"{name!r} {value} is not a plausible Unix timestamp")


def _json_type(name: str, value: Any, kind: type, kind_name: str) -> None:
    # bool is an int in Python; Stripe never sends a bool where it means a number.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise Rejected("wrong_type", f"{name!r} must be {kind_name}, got {type(value).__name__} {_preview(value)}")


# Payload fields dbt's staging models read with a type (models/staging/stg_stripe__*.sql:
# jsonb_to_record columns, casts): a value PostgreSQL cannot turn into that type would fail
# every build of the marts, not just this object's row, so it is rejected here. Null or
# absent is fine (the column is null); text fields take any JSON.
TYPED_PAYLOAD_FIELDS: dict[str, tuple[tuple[tuple[str, ...], Any], ...]] = {
    "charge": (
        (("amount_captured",), _minor_units),
        (("amount_refunded",), _minor_units),
        (("paid",), _boolean),
        (("captured",), _boolean),
        (("refunded",), _boolean),
        (("disputed",), _boolean),
        (("outcome",), _json_object),
        (("outcome", "risk_score"), _risk_score),
        (("payment_method_details",), _json_object),
        (("payment_method_details", "card"), _json_object),
        (("billing_details",), _json_object),
    ),
    "refund": (),
    "dispute": (
        (("is_charge_refundable",), _boolean),
        (("evidence_details", "due_by"), _unix_time),
    ),
    "balance_transaction": (
        (("fee",), _signed_minor_units),
        (("net",), _signed_minor_units),
        (("exchange_rate",), _exchange_rate),
        (("available_on",), _unix_time),
        (("fee_details",), _fee_details),
    ),
    "payout": (
        (("arrival_date",), _unix_time),
        (("automatic",), _boolean),
    ),
}


def _check_fields_the_marts_type(obj: dict, object_type: str) -> None:
    for path, check in TYPED_PAYLOAD_FIELDS[object_type]:
        value: Any = obj
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            check(".".join(path), value)


def _event_time(header: str | None, kafka_timestamp: datetime | None, created: int) -> datetime:
    """When this version was observed: the header, else the broker's timestamp, else `created`."""
    if header is None:
        return kafka_timestamp or _utc(created)
    try:
        event_time = _utc(int(header) / 1000)
    except (ValueError, OverflowError, OSError):
        raise Rejected(
            "invalid_header", f"header {HEADER_EVENT_TIME}={_preview(header)} is not epoch milliseconds"
        ) from None
    if event_time < EARLIEST:
        raise Rejected("invalid_header", f"header {HEADER_EVENT_TIME}={_preview(header)} is before {EARLIEST.year}")
    return event_time


def _header_dicts(batch: pa.RecordBatch) -> list[dict[str, bytes | None]]:
    """Per row, its headers as a dict (a value may be null); built from the flat child arrays (far cheaper
    than to_pylist). A key repeated in one message keeps its last value."""
    headers = batch.column("headers")
    offsets = headers.offsets.to_pylist()
    entries = headers.flatten()
    keys = entries.field("key").to_pylist()
    values = entries.field("value").to_pylist()
    valid = headers.is_valid().to_pylist()
    return [
        dict(zip(keys[offsets[i] : offsets[i + 1]], values[offsets[i] : offsets[i + 1]], strict=False))
        if valid[i]
        else {}
        for i in range(len(batch))
    ]


def _only_where(mask: pa.Array, column: pa.Array) -> pa.Array:
    return pc.if_else(mask, column, pa.nulls(len(column), column.type))


def _kafka_timestamps(batch: pa.RecordBatch) -> tuple[pa.Array, list[datetime | None]]:
    """The broker's timestamps, nulled outside [EARLIEST, LATEST): a producer may set any CreateTime, and
    neither Python nor PostgreSQL holds every int64 of microseconds. (Arrow array, Python values)."""
    micros = batch.column("timestamp").cast(pa.int64())
    plausible = pc.and_(
        pc.greater_equal(micros, int(EARLIEST.timestamp() * 1e6)), pc.less(micros, int(LATEST.timestamp() * 1e6))
    )
    bounded = _only_where(pc.fill_null(plausible, False), micros).cast(UTC_MICROS)
    return bounded, bounded.to_pylist()


def pg_text(text: str) -> str:
    """Text PostgreSQL can store: no NUL characters (text and jsonb refuse them)."""
    return text.replace("\x00", "\ufffd")


def transform_batch(batch: pa.RecordBatch, topic_id: str = "", now: datetime | None = None) -> pa.RecordBatch:
    """Kafka source rows (KAFKA_MESSAGE_SCHEMA) → OUTPUT_SCHEMA rows, stamped with the topic's id.

    Only what must be decided per message runs in Python; the Kafka columns and
    the payload bytes pass through as Arrow arrays, untouched. `now` (default: the
    clock) bounds event times from the future.
    """
    now = now or datetime.now(UTC)
    rows = len(batch)
    values = batch.column("value").to_pylist()
    kafka_timestamp_column, kafka_timestamps = _kafka_timestamps(batch)
    headers = _header_dicts(batch)
    typed: dict[str, list] = {name: [None] * rows for name in TYPED_COLUMNS if name != "payload"}
    reasons: list[str | None] = [None] * rows
    details: list[str | None] = [None] * rows

    for i in range(rows):
        try:
            row = parse_message(values[i], headers[i], kafka_timestamps[i], now)
        except Rejected as rejection:
            reasons[i], details[i] = rejection.reason, pg_text(rejection.detail)
            continue
        except Exception as exc:  # noqa: BLE001 - the boundary: no message may stop the stream
            reasons[i], details[i] = "unparseable", pg_text(f"{type(exc).__name__}: {exc}"[:300])
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
        "kafka_timestamp": kafka_timestamp_column,
        "kafka_key": _only_where(quarantined, batch.column("key")),
        "raw_value": _only_where(quarantined, batch.column("value")),
        "headers": pa.array([_headers_json(headers[i]) if reasons[i] else None for i in range(rows)], pa.string()),
        "quarantine_reason": reason_array,
        "quarantine_detail": pa.array(details, pa.string()),
    }
    return pa.RecordBatch.from_arrays([columns[name] for name in OUTPUT_SCHEMA.names], schema=OUTPUT_SCHEMA)


def _headers_json(headers: dict[str, bytes | None]) -> str:
    """A quarantined message's headers as a JSON object PostgreSQL's jsonb takes (values as UTF-8 text,
    bad bytes and NULs replaced)."""
    return orjson.dumps(
        {
            pg_text(str(key)): None if value is None else pg_text(bytes(value).decode("utf-8", "replace"))
            for key, value in headers.items()
        }
    ).decode()


def transform_batches(batches, topic_id: str = ""):
    """`mapInArrow` entry point (with `functools.partial` for the topic id)."""
    for batch in batches:
        yield transform_batch(batch, topic_id)
