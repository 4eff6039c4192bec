"""Payouts and balance transactions in synthetic mode: the ledger keeps the payout of each balance transaction,
the local Stripe-compatible API lists them as Stripe does (`/v1/payouts`, `/v1/balance_transactions`, with
`payout=po_…`), and the real-mode pulls, run against it over real HTTP, publish each balance transaction
naming the payout that paid it out.
"""

from __future__ import annotations

import time
from contextlib import closing

import orjson
import pytest

from stripe_helpers import headers_of, read_topic
from txstream_dagster.defs.reconciliation.assets import source_api
from txstream_dagster.defs.stripe_source.backfill import backfill_objects
from txstream_dagster.defs.stripe_source.cursors import CursorStore
from txstream_dagster.defs.stripe_source.object_versions import ObjectVersion
from txstream_dagster.defs.stripe_source.publisher import Publisher
from txstream_dagster.defs.stripe_source.resources import StripeResource
from txstream_dagster.defs.stripe_source.stripe_api import LIST_PATHS, StripeSourceError, sync_balance_transactions
from txstream_dagster.defs.stripe_source.synthetic_charges import DAY_MS, SyntheticStripe
from txstream_dagster.defs.stripe_source.synthetic_ledger import latest_versions, synthetic_ledger
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_spark.event_contract import HEADER_EVENT_TIME, HEADER_PAYOUT

DAY = 86_400
# Ten days of history: enough business days for automatic payouts, some still in transit at its end.
HISTORY_DAYS = 10


def record_history(postgres: PostgresResource, seed: int, end_ms: int) -> list[ObjectVersion]:
    """The generator's history, recorded in the ledger in chunks as the producer records it."""
    versions = list(SyntheticStripe(seed).history(end_ms - HISTORY_DAYS * DAY_MS, end_ms, 300))
    with synthetic_ledger(postgres) as ledger:
        for at in range(0, len(versions), 250):
            ledger.record(versions[at : at + 250])
    return versions


def held(versions: list[ObjectVersion]) -> tuple[dict[str, dict], dict[str, str]]:
    """What Stripe holds after `versions`: each object's latest payload, and each balance transaction's payout."""
    latest: dict[str, ObjectVersion] = {}
    payout_of: dict[str, str] = {}
    for version in sorted(versions, key=lambda v: v.event_time_ms):
        latest[version.object_id] = version
        if version.payout_id:
            payout_of[version.object_id] = version.payout_id
    return {object_id: v.payload for object_id, v in latest.items()}, payout_of


def test_within_a_chunk_the_ledger_keeps_the_payout_an_earlier_version_named_when_the_latest_names_none():
    bt = {"id": "txn_1", "object": "balance_transaction", "created": 1}
    named = ObjectVersion("balance_transaction", "txn_1", 2_000, bt, None, "po_1")
    relisted = ObjectVersion("balance_transaction", "txn_1", 3_000, {**bt, "status": "available"})
    older = ObjectVersion("balance_transaction", "txn_1", 1_000, bt, None, "po_old")  # arrives late: ignored
    assert latest_versions([named, relisted, older]) == [relisted._replace(payout_id="po_1")]


def test_the_local_api_lists_payouts_and_the_balance_transactions_each_payout_paid_out(
    clean_warehouse: PostgresResource,
):
    end_ms = int(time.time() * 1000)
    objects, payout_of = held(record_history(clean_warehouse, 71, end_ms))
    payouts = {i: obj for i, obj in objects.items() if obj["object"] == "payout"}
    # A later version listed without its payout (the balance-transaction cursor's) keeps the payout known.
    relisted_id, relisted_payout = next(iter(payout_of.items()))
    with synthetic_ledger(clean_warehouse) as ledger:
        ledger.record([ObjectVersion("balance_transaction", relisted_id, end_ms + 1, objects[relisted_id])])
    start, end = (end_ms - (HISTORY_DAYS + 1) * DAY_MS) // 1000, end_ms // 1000 + 1

    with source_api(StripeResource(), clean_warehouse) as (api, _):
        listed_payouts = api.list_between(LIST_PATHS["payout"], start, end)
        under = {
            payout: [bt for page in api.pages(LIST_PATHS["balance_transaction"], payout=payout) for bt in page]
            for payout in payouts
        }
        with pytest.raises(StripeSourceError, match="payout"):
            api.list_between(LIST_PATHS["charge"], start, end, payout=next(iter(payouts)))

    assert payouts and payout_of  # the history has payouts that paid balance transactions out
    assert {obj["id"]: obj for obj in listed_payouts} == payouts
    assert [obj["created"] for obj in listed_payouts] == sorted(obj["created"] for obj in payouts.values())
    for payout, balance_transactions in under.items():
        expected = {bt for bt, paid_by in payout_of.items() if paid_by == payout}
        assert [bt["id"] for bt in balance_transactions] == sorted(
            expected, key=lambda bt: (objects[bt]["created"], bt), reverse=True
        )  # newest first, as Stripe lists
        assert all(bt == objects[bt["id"]] for bt in balance_transactions)
    assert relisted_id in {bt["id"] for bt in under[relisted_payout]}


def test_the_real_mode_pulls_against_the_local_api_name_the_payout_of_every_balance_transaction_it_paid_out(
    clean_warehouse: PostgresResource, kafka: KafkaResource
):
    now_s = int(time.time())
    objects, payout_of = held(record_history(clean_warehouse, 72, (now_s - 60) * 1000))
    reconciled = {
        bt: payout for bt, payout in payout_of.items() if objects[payout]["reconciliation_status"] == "completed"
    }
    assert reconciled  # the history has payouts Stripe reconciled
    cursors = CursorStore(clean_warehouse, "stripe-local")
    start_s = now_s - (HISTORY_DAYS + 1) * DAY

    with source_api(StripeResource(), clean_warehouse) as (api, _), closing(kafka.producer()) as producer:
        publisher = Publisher(producer, kafka.topic, "stripe")
        # As pull_stripe: the balance transactions first, then the history of the other objects.
        listed = sync_balance_transactions(
            api, publisher, cursors, now_s=now_s, start_s=start_s, window_seconds=DAY, settle_seconds=15
        )
        backfill = backfill_objects(
            api, publisher, cursors, now_s=now_s, start_s=start_s, window_seconds=DAY, settle_seconds=15
        )

    messages: dict[str, list[tuple[int, str | None, dict]]] = {}
    for record in read_topic(kafka):
        headers = headers_of(record)
        messages.setdefault(record.key.decode(), []).append(
            (int(headers[HEADER_EVENT_TIME]), headers.get(HEADER_PAYOUT), orjson.loads(record.value))
        )
    assert backfill.complete and listed.listed == sum(
        1 for o in objects.values() if o["object"] == "balance_transaction"
    )
    assert set(messages) == set(objects)
    for object_id, found in messages.items():
        found.sort(key=lambda message: message[0])
        expected = [None, reconciled[object_id]] if object_id in reconciled else [None]
        assert [payout for _, payout, _ in found] == expected, object_id
        assert found[-1][2] == objects[object_id]  # the newest version is what Stripe holds
