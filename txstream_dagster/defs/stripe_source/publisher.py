"""Publishing object versions to Kafka per the event contract, returning only once Kafka acknowledged them.

The contract (spark/txstream_spark/event_contract.py): key = object id, value =
the object's JSON exactly, headers = object type, source, schema version and
event time. `publish` sends in chunks and flushes each one; a message whose
delivery failed (broker down, topic gone, timeout) is sent again after a back-off,
for as long as it takes: an outage blocks the producer, it never drops events.
Callers move their cursor only after `publish` returned.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from txstream_dagster.defs.stripe_source.object_versions import ObjectVersion
from txstream_spark.event_contract import MAX_MESSAGE_BYTES, message_headers

log = logging.getLogger(__name__)

CHUNK_SIZE = 5_000
# A chunk is sent when full or when its first message has waited this long: at low rates
# (a paced stream) messages must not sit in a half-full chunk.
CHUNK_MAX_WAIT_S = 0.1
RETRY_BACKOFF_FIRST_S = 1.0
RETRY_BACKOFF_MAX_S = 30.0


class DeliveryFailed(RuntimeError):
    pass


class KafkaMessage(NamedTuple):
    object_type: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def encode(version: ObjectVersion, source: str) -> KafkaMessage:
    value = orjson.dumps(version.payload)
    if len(value) > MAX_MESSAGE_BYTES:
        raise ValueError(
            f"{version.object_type} {version.object_id} serialises to {len(value)} bytes, over the "
            f"{MAX_MESSAGE_BYTES}-byte limit of the event contract: it is not a Stripe object"
        )
    return KafkaMessage(
        version.object_type,
        version.object_id.encode(),
        value,
        message_headers(version.object_type, source, version.event_time_ms, version.api_version, version.payout_id),
    )


@dataclass
class PublishReport:
    messages: int = 0
    by_object_type: Counter = field(default_factory=Counter)
    resent: int = 0  # deliveries that failed once and were sent again

    def add(self, other: PublishReport) -> None:
        self.messages += other.messages
        self.by_object_type.update(other.by_object_type)
        self.resent += other.resent


class Publisher:
    def __init__(
        self,
        producer: KafkaProducer,
        topic: str,
        source: str,
        *,
        chunk_size: int = CHUNK_SIZE,
        give_up_after_s: float | None = None,
        before_send: Callable[[list[ObjectVersion]], None] | None = None,
    ):
        """`give_up_after_s`: None (the default) retries a failed delivery forever.
        `before_send(chunk)` runs before each chunk is sent (the synthetic source starts recording its ledger)."""
        self.producer = producer
        self.topic = topic
        self.source = source
        self.chunk_size = chunk_size
        self.give_up_after_s = give_up_after_s
        self.before_send = before_send

    def publish(
        self, versions: Iterable[ObjectVersion], progress: Callable[[int], None] | None = None
    ) -> PublishReport:
        """Send every version and wait until Kafka acknowledged all of them; `progress(n)` after each chunk."""
        report = PublishReport()
        for versions_chunk in _chunks(iter(versions), self.chunk_size):
            chunk = [encode(version, self.source) for version in versions_chunk]
            if self.before_send:
                self.before_send(versions_chunk)
            report.resent += self._deliver(chunk)
            report.messages += len(chunk)
            report.by_object_type.update(message.object_type for message in chunk)
            if progress:
                progress(len(chunk))
        return report

    def _deliver(self, chunk: list[KafkaMessage]) -> int:
        """Send `chunk` until every message is acknowledged; returns how many had to be sent again."""
        remaining, resent, attempt = chunk, 0, 0
        first_failure_at: float | None = None
        while True:
            futures, send_error = [], None
            for message in remaining:
                try:
                    futures.append(
                        self.producer.send(self.topic, key=message.key, value=message.value, headers=message.headers)
                    )
                except KafkaError as exc:  # no metadata within max_block_ms: the broker is unreachable
                    send_error = exc
                    break
            self.producer.flush()
            failed = [message for message, future in zip(remaining, futures, strict=False) if future.failed()]
            failed += remaining[len(futures) :]  # never sent: keep their order behind the failed ones
            if not failed:
                return resent
            error = send_error or next(future.exception for future in futures if future.failed())
            now = time.monotonic()
            first_failure_at = first_failure_at or now
            if self.give_up_after_s is not None and now - first_failure_at > self.give_up_after_s:
                raise DeliveryFailed(
                    f"Kafka did not acknowledge {len(failed)} messages to topic {self.topic!r} within "
                    f"{self.give_up_after_s:.0f} s: {error!r}. Nothing after them was acknowledged either; "
                    "the source cursor was not moved."
                )
            attempt += 1
            backoff = min(RETRY_BACKOFF_FIRST_S * 2 ** (attempt - 1), RETRY_BACKOFF_MAX_S)
            log.warning(
                "Kafka did not acknowledge %d of %d messages to %s (%r); sending them again in %.0f s",
                len(failed),
                len(remaining),
                self.topic,
                error,
                backoff,
            )
            time.sleep(backoff)
            resent += len(failed)
            remaining = failed


def _chunks(items: Iterator, size: int, max_wait_s: float = CHUNK_MAX_WAIT_S) -> Iterator[list]:
    """Lists of up to `size` items; a list is closed early once its first item waited `max_wait_s`."""
    chunk: list = []
    opened = 0.0
    for item in items:
        if not chunk:
            opened = time.monotonic()
        chunk.append(item)
        if len(chunk) >= size or time.monotonic() - opened >= max_wait_s:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
