"""`stripe_reconciliation`: per UTC day, what Stripe holds against what landed, with the ids that differ.

No `from __future__ import annotations` here: Dagster reads the resource types from the live annotations.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from functools import partial

import dagster as dg
import stripe as stripe_library

from txstream_dagster.defs.reconciliation.compare import DayReconciliation, compare, some_ids
from txstream_dagster.defs.reconciliation.warehouse import day_bounds, landed_on, quarantined_among, save
from txstream_dagster.defs.stripe_source.local_stripe_api import LocalStripeApi
from txstream_dagster.defs.stripe_source.resources import ACCOUNT_HISTORY_STARTS, StripeResource
from txstream_dagster.defs.stripe_source.stripe_api import LIST_PATHS, StripeApi
from txstream_dagster.defs.stripe_source.synthetic_ledger import ledger_page
from txstream_dagster.defs.stripe_source.topic_feeds import stripe_api
from txstream_dagster.resources import PostgresResource

reconciliation_partitions = dg.DailyPartitionsDefinition(
    start_date=ACCOUNT_HISTORY_STARTS.isoformat(), timezone="UTC", end_offset=0
)
RECONCILIATION = dg.AssetKey("stripe_reconciliation")
ALL_LANDED = "every_stripe_object_landed"
AMOUNTS_MATCH = "amounts_match_stripe"
NOTHING_UNKNOWN = "nothing_landed_unknown_to_stripe"


@contextmanager
def source_api(stripe: StripeResource, postgres: PostgresResource) -> Iterator[tuple[StripeApi, str]]:
    """Stripe's API and the `source` its objects land as; in synthetic mode, the local API over the ledger."""
    if stripe.configured:
        yield stripe_api(stripe), "stripe"
        return
    with LocalStripeApi(partial(ledger_page, postgres)) as local:
        client = stripe_library.StripeClient(local.api_key, base_addresses={"api": local.url}, max_network_retries=0)
        yield StripeApi(client, local.api_key, local.url), "synthetic"


def reconcile_day(api: StripeApi, postgres: PostgresResource, day: date, source: str) -> list[DayReconciliation]:
    start, end = (int(moment.timestamp()) for moment in day_bounds(day))
    results = []
    for object_type, path in LIST_PATHS.items():
        in_stripe = api.list_between(path, start, end)
        landed = landed_on(postgres, day, object_type, source)
        not_landed = [obj["id"] for obj in in_stripe if obj["id"] not in landed]
        results.append(compare(day, object_type, in_stripe, landed, quarantined_among(postgres, not_landed)))
    return results


def _table(results: list[DayReconciliation]) -> str:
    lines = [
        "| day | object | in Stripe | landed | missing | quarantined | unknown to Stripe | amount differs |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.day} | {r.object_type} | {r.stripe_count} | {r.landed_count} | {len(r.missing_ids)} "
        f"| {len(r.quarantined_ids)} | {len(r.extra_ids)} | {len(r.mismatched_ids)} |"
        for r in results
        if not r.complete or len(results) <= 3 * 7  # a long range shows only its differing days
    ]
    return "\n".join(lines)


def _ids_by_type(results: list[DayReconciliation], attribute: str) -> dict[str, str]:
    """Object type → the ids (of every day) that differ in one way, the first few named."""
    ids: dict[str, list[str]] = {}
    for r in results:
        ids.setdefault(r.object_type, []).extend(getattr(r, attribute))
    return {object_type: some_ids(found) for object_type, found in ids.items() if found}


def check_results(results: list[DayReconciliation]) -> list[dg.AssetCheckResult]:
    missing = _ids_by_type(results, "missing_ids")
    quarantined = _ids_by_type(results, "quarantined_ids")
    mismatched = _ids_by_type(results, "mismatched_ids")
    extra = _ids_by_type(results, "extra_ids")
    return [
        dg.AssetCheckResult(
            check_name=ALL_LANDED,
            passed=not missing and not quarantined,
            # Lost is an error; quarantined is accounted for (and can be replayed): a warning.
            severity=dg.AssetCheckSeverity.ERROR if missing else dg.AssetCheckSeverity.WARN,
            metadata={
                "missing": sum(len(r.missing_ids) for r in results),
                "missing_ids": dg.MetadataValue.json(missing),
                "quarantined": sum(len(r.quarantined_ids) for r in results),
                "quarantined_ids": dg.MetadataValue.json(quarantined),
            },
        ),
        dg.AssetCheckResult(
            check_name=AMOUNTS_MATCH,
            passed=not mismatched,
            metadata={
                "mismatched_ids": dg.MetadataValue.json(mismatched),
                "stripe_amounts": dg.MetadataValue.json({r.object_type: r.stripe_amounts for r in results}),
                "landed_amounts": dg.MetadataValue.json({r.object_type: r.landed_amounts for r in results}),
            },
        ),
        dg.AssetCheckResult(
            check_name=NOTHING_UNKNOWN,
            passed=not extra,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"unknown_ids": dg.MetadataValue.json(extra)},
        ),
    ]


@dg.asset(
    key=RECONCILIATION,
    group_name="reconciliation",
    partitions_def=reconciliation_partitions,
    # A range of days (a backfill in the UI, `dagster asset materialize --partition-range`) is one run.
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["raw_transactions"],
    kinds={"stripe", "postgres"},
    description=(
        "Per UTC day and object type: the charges, refunds, disputes, payouts and balance transactions Stripe "
        "lists as created that day "
        "(its list endpoints; in synthetic mode a local Stripe-compatible API over the generator's ledger) "
        "against raw.transactions: counts, sums per currency and the ids that are missing, quarantined, "
        "unknown to Stripe or landed with another amount. Kept in ops.reconciliation_results."
    ),
    check_specs=[
        dg.AssetCheckSpec(ALL_LANDED, asset=RECONCILIATION, description="Every object Stripe holds has landed."),
        dg.AssetCheckSpec(
            AMOUNTS_MATCH, asset=RECONCILIATION, description="Every landed object has Stripe's amount and currency."
        ),
        dg.AssetCheckSpec(
            NOTHING_UNKNOWN, asset=RECONCILIATION, description="Nothing landed that Stripe does not list."
        ),
    ],
)
def stripe_reconciliation(
    context: dg.AssetExecutionContext, postgres: PostgresResource, stripe: StripeResource
) -> dg.MaterializeResult:
    days = [date.fromisoformat(key) for key in context.partition_keys]
    results: list[DayReconciliation] = []
    with source_api(stripe, postgres) as (api, source):
        context.log.info(f"Reconciling {days[0]} … {days[-1]} ({source}) with {api.api_base}")
        for day in days:
            results += reconcile_day(api, postgres, day, source)
    save(postgres, results)
    for r in results:
        if r.missing_ids:
            context.log.error(
                f"{len(r.missing_ids)} {r.object_type}s Stripe holds for {r.day} never landed "
                f"({some_ids(r.missing_ids)}; all of them in ops.reconciliation_results). Publish that day "
                f"again from Stripe's list endpoints: `txstream produce --source stripe --backfill-from {r.day}`."
            )
    return dg.MaterializeResult(
        metadata={
            "days": f"{days[0]} … {days[-1]}" if len(days) > 1 else days[0].isoformat(),
            "source": source,
            "in_stripe": sum(r.stripe_count for r in results),
            "landed": sum(r.landed_count for r in results),
            "complete": all(r.complete for r in results),
            "by_object_type": dg.MetadataValue.md(_table(results)),
        },
        check_results=check_results(results),
    )
