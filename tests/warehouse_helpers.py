"""A warehouse built the way the pipeline builds it, for tests of what reads the marts (dashboards, reports).

- two weeks of synthetic Stripe history (charges, declines, refunds, disputes) up to now,
  published per the event contract and landed through the stream's real transform and
  sink in micro-batches, spread over three partitions by key;
- Stripe's own example objects, and a few messages the stream must quarantine;
- Kafka lag as the stream sensor records it;
- the synthetic generator's ledger (what "Stripe" holds), and the `stripe_reconciliation`
  asset run on the last whole day against it;
- GBP rates from the `forex_rates` asset (the bundled ECB file): ECB publishes nothing
  for some currencies the synthetic customers pay in (AED, KWD, …), so their charges
  stay without GBP amounts, as they would in production;
- the dbt build, through Dagster.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from dbt_helpers import build_marts, empty_warehouse
from stream_helpers import Message, land_messages, land_objects, message_for
from stripe_helpers import stripe_fixture
from txstream_dagster.defs.forex.assets import forex_rates
from txstream_dagster.defs.forex.resources import ForexApiResource
from txstream_dagster.defs.forex.sources import load_ecb_history
from txstream_dagster.defs.reconciliation.assets import stripe_reconciliation
from txstream_dagster.defs.stream.offsets import committed_offsets, lag_by_partition, record_lag
from txstream_dagster.defs.stripe_source.publisher import encode
from txstream_dagster.defs.stripe_source.resources import StripeResource
from txstream_dagster.defs.stripe_source.synthetic_charges import SyntheticStripe
from txstream_dagster.defs.stripe_source.synthetic_ledger import synthetic_ledger
from txstream_dagster.resources import PostgresResource
from txstream_spark.event_contract import message_headers

TOPIC = "stripe.events"  # stream_helpers.kafka_batch's topic
PARTITIONS = 3
MICRO_BATCH = 400
HISTORY = timedelta(days=14)
HISTORY_CHARGES = 1_500
SEED = 7
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@dataclass(frozen=True)
class BuiltWarehouse:
    start: datetime  # the synthetic history's window
    end: datetime
    dbt_build: dg.ExecuteInProcessResult


def build_pipeline_warehouse(postgres: PostgresResource, end: datetime | None = None) -> BuiltWarehouse:
    end = end or datetime.now(UTC)
    start = end - HISTORY
    empty_warehouse(postgres)
    placed = on_partitions([*synthetic_history(start, end), *unreadable_messages(end)])
    for first in range(0, len(placed), MICRO_BATCH):
        land_messages(postgres, placed[first : first + MICRO_BATCH])
    land_objects(postgres, [stripe_fixture("charge"), stripe_fixture("refund"), stripe_fixture("dispute")], "stripe")
    observe_lag(postgres, [{0: 120, 1: 40}, {0: 30, 1: 25}, {1: 25}])
    reconcile_with_the_ledger(postgres, start, end)
    fetch_gbp_rates(postgres, start.date(), end.date())
    dbt_build = build_marts(postgres, full_refresh=True)
    if not dbt_build.success:
        raise AssertionError("the dbt build of the scenario failed; run tests/test_dbt_marts.py to see why")
    return BuiltWarehouse(start, end, dbt_build)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def synthetic_history(start: datetime, end: datetime) -> Iterator[Message]:
    for version in SyntheticStripe(SEED).history(_ms(start), _ms(end), HISTORY_CHARGES):
        message = encode(version, "synthetic")
        yield Message(value=message.value, key=message.key, headers=message.headers)


def reconcile_with_the_ledger(postgres: PostgresResource, start: datetime, end: datetime) -> None:
    """Record the history in the ledger, as the synthetic source does, and reconcile the last whole day."""
    with synthetic_ledger(postgres) as ledger:
        ledger.record(list(SyntheticStripe(SEED).history(_ms(start), _ms(end), HISTORY_CHARGES)))
    result = dg.materialize(
        [stripe_reconciliation],
        resources={"postgres": postgres, "stripe": StripeResource()},
        partition_key=(end.date() - timedelta(days=1)).isoformat(),
    )
    assert result.success


def unreadable_messages(at: datetime) -> list[Message]:
    """What a broken producer might send: each is quarantined with its own reason."""
    headers = message_headers("charge", "synthetic", _ms(at))
    negative = {**stripe_fixture("charge"), "id": "ch_negative_amount", "amount": -100}
    return [
        Message(value=b'{"id": "ch_truncated", "object": "cha', key=b"ch_truncated", headers=headers),
        Message(value=b'{"id": "ch_truncated_2", "amo', key=b"ch_truncated_2", headers=headers),
        Message(value=None, key=b"ch_tombstone", headers=headers),
        message_for(negative, "synthetic", _ms(at)),
    ]


def on_partitions(messages: Iterable[Message]) -> list[Message]:
    """Each message on its key's partition, at that partition's next offset, as a producer would place it."""
    next_offset: Counter[int] = Counter()
    placed = []
    for message in messages:
        partition = zlib.crc32(message.key or b"") % PARTITIONS
        placed.append(Message(message.value, message.key, message.headers, partition, next_offset[partition]))
        next_offset[partition] += 1
    return placed


def observe_lag(postgres: PostgresResource, observations: Iterable[dict[int, int]]) -> None:
    """Record lag as the stream sensor does, for end offsets `unlanded` messages past what has landed."""
    committed = committed_offsets(postgres, TOPIC)
    for unlanded in observations:
        end_offsets = {p: committed.next_offsets.get(p, 0) + unlanded.get(p, 0) for p in range(PARTITIONS)}
        record_lag(postgres, TOPIC, end_offsets, lag_by_partition(end_offsets, committed, committed.topic_id))


def fetch_gbp_rates(postgres: PostgresResource, first: date, last: date) -> None:
    # The bundled ECB file ends when its wheel was built: let its last rates stand for
    # the days since (the opt-in TXSTREAM_FOREX_BUNDLED_MAX_DAYS_PAST_END), so the
    # scenario keeps its rates as the calendar moves on.
    stale_days = max(0, (last - load_ecb_history().dates[-1]).days)
    forex = ForexApiResource(source="ecb_bundled", bundled_max_days_past_end=stale_days)
    dg.materialize(
        [forex_rates],
        resources={"forex": forex, "postgres": postgres},
        tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()},
    )
