"""Build the dbt marts through Dagster, and make the Stripe objects and forex rows the tests need.

Objects are Stripe's own example objects (tests/fixtures/stripe) with only the
fields a test is about changed, landed through the stream's real transform and
sink (stream_helpers.land_objects). Forex rows are written as the forex asset
writes them: one row per calendar date, weekends carrying Friday's rate.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import orjson
from psycopg import sql
from psycopg.rows import dict_row

from stream_helpers import Message, land_messages
from stripe_helpers import stripe_fixture
from txstream_dagster.db.logins import Login
from txstream_dagster.defs.dbt.assets import DbtBuildConfig, txstream_dbt_models
from txstream_dagster.defs.dbt.checks import fx_rate_missing_charges
from txstream_dagster.resources import PostgresResource, build
from txstream_dagster.settings import load_settings
from txstream_spark.event_contract import message_headers

# Every table the stream, the forex asset and dbt's hook write: a test's data is its own.
WRITTEN_TABLES = (
    "raw.transactions, raw.quarantined_events, raw.forex_rates, "
    "ops.stream_offsets, ops.stream_batches, ops.stream_lag, ops.dbt_node_runs, "
    "ops.synthetic_stripe_objects, ops.reconciliation_results"
)


def empty_warehouse(postgres: PostgresResource) -> None:
    with postgres.connect(login=Login.OWNER) as conn:
        conn.execute(f"TRUNCATE {WRITTEN_TABLES}")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def charge(
    charge_id: str,
    amount: int,
    currency: str,
    created: datetime,
    *,
    status: str = "succeeded",
    customer: str | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Stripe's example charge, captured in full when it succeeded."""
    obj = copy.deepcopy(stripe_fixture("charge"))
    succeeded = status == "succeeded"
    obj.update(
        id=charge_id,
        amount=amount,
        currency=currency,
        created=int(created.timestamp()),
        status=status,
        customer=customer,
        captured=succeeded,
        paid=succeeded,
        amount_captured=amount if succeeded else 0,
    )
    obj["refunds"]["url"] = f"/v1/charges/{charge_id}/refunds"
    obj.update(changes)
    return obj


def declined(obj: dict[str, Any], decline_code: str) -> dict[str, Any]:
    obj = {
        **obj,
        "status": "failed",
        "captured": False,
        "paid": False,
        "amount_captured": 0,
        "failure_code": "card_declined",
        "failure_message": "Your card was declined.",
    }
    obj["outcome"] = {
        **obj["outcome"],
        "type": "issuer_declined",
        "network_status": "declined_by_network",
        "reason": decline_code,
        "risk_level": "normal",
    }
    return obj


def refund(
    refund_id: str, of: dict[str, Any], amount: int, created: datetime, status: str = "succeeded"
) -> dict[str, Any]:
    obj = copy.deepcopy(stripe_fixture("refund"))
    obj.update(
        id=refund_id,
        charge=of["id"],
        amount=amount,
        currency=of["currency"],
        created=int(created.timestamp()),
        status=status,
    )
    return obj


def dispute(dispute_id: str, of: dict[str, Any], amount: int, created: datetime, status: str) -> dict[str, Any]:
    obj = copy.deepcopy(stripe_fixture("dispute"))
    obj.update(
        id=dispute_id,
        charge=of["id"],
        amount=amount,
        currency=of["currency"],
        created=int(created.timestamp()),
        status=status,
    )
    return obj


def balance_transaction(
    bt_id: str,
    amount: int,
    created: datetime,
    *,
    source: str,
    fee: int | None = 0,
    kind: str = "charge",
    category: str | None = None,
    currency: str = "gbp",
    exchange_rate: float | None = None,
    status: str = "available",
    available_on: datetime | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Stripe's example balance transaction: `amount` and `fee` in minor units of `currency`, net = amount − fee."""
    obj = copy.deepcopy(stripe_fixture("balance_transaction"))
    obj.update(
        id=bt_id,
        amount=amount,
        fee=fee,
        net=None if fee is None else amount - fee,
        currency=currency,
        created=int(created.timestamp()),
        available_on=int((available_on or created).timestamp()),
        exchange_rate=exchange_rate,
        fee_details=[
            {"amount": fee, "application": None, "currency": currency, "description": None, "type": "stripe_fee"}
        ]
        if fee
        else [],
        source=source,
        status=status,
        type=kind,
        reporting_category=category or kind,
    )
    obj.update(changes)
    return obj


def payout(
    payout_id: str,
    amount: int,
    created: datetime,
    status: str,
    *,
    currency: str = "gbp",
    arrival: datetime | None = None,
    balance_transaction: str | None = None,
) -> dict[str, Any]:
    obj = copy.deepcopy(stripe_fixture("payout"))
    obj.update(
        id=payout_id,
        amount=amount,
        currency=currency,
        created=int(created.timestamp()),
        arrival_date=int((arrival or created).timestamp()),
        status=status,
        balance_transaction=balance_transaction,
    )
    return obj


def with_card_country(obj: dict[str, Any], country: str | None) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["payment_method_details"]["card"]["country"] = country
    return obj


def land_paid_out(
    postgres: PostgresResource, payout_id: str, objects: Iterable[dict[str, Any]], source: str = "synthetic"
):
    """Balance transactions as a producer lists them under a payout (the payout header), one micro-batch."""
    base_ms = int(datetime.now(UTC).timestamp() * 1000)
    return land_messages(
        postgres,
        [
            Message(
                value=orjson.dumps(obj),
                key=obj["id"].encode(),
                headers=message_headers(obj["object"], source, base_ms + i, payout_id=payout_id),
            )
            for i, obj in enumerate(objects)
        ],
    )


def write_rates(
    postgres: PostgresResource, rows: Iterable[tuple[date, str, Decimal | str, date]], source: str = "test"
) -> None:
    """(rate_date, quote, units of quote per 1 GBP, effective_date) → raw.forex_rates, replacing what was there
    (and marking a replaced rate as landed now, as the forex asset does)."""
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO raw.forex_rates (rate_date, base, quote, rate, effective_date, source, fetched_at)
               VALUES (%s, 'gbp', %s, %s, %s, %s, now())
               ON CONFLICT (rate_date, base, quote) DO UPDATE
               SET rate = excluded.rate, effective_date = excluded.effective_date, fetched_at = excluded.fetched_at,
                   landed_xid = pg_current_xact_id()""",
            [(rate_date, quote, Decimal(rate), effective, source) for rate_date, quote, rate, effective in rows],
        )


def build_marts(
    postgres: PostgresResource, *, full_refresh: bool = False, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    """Materialise every dbt model (running its tests as checks) and the fx-rate check, as Dagster would."""
    return dg.materialize(
        [txstream_dbt_models, fx_rate_missing_charges],
        resources={"dbt": build.dbt_cli(load_settings()), "postgres": postgres},
        run_config=dg.RunConfig(ops={"txstream_dbt_models": DbtBuildConfig(full_refresh=full_refresh)}),
        raise_on_error=False,
        instance=instance,
    )


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        f"{e.asset_key.to_user_string()}:{e.check_name}" for e in result.get_asset_check_evaluations() if not e.passed
    ]


def rows(postgres: PostgresResource, query: str | sql.Composable, params: Any = None) -> list[dict[str, Any]]:
    """As dbt's login, which reads every layer: raw, staging, marts and monitoring."""
    with postgres.connect(login=Login.TRANSFORMER) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def facts_by_charge(postgres: PostgresResource, schema: str = "marts") -> dict[str, dict[str, Any]]:
    return {row["charge_id"]: row for row in rows(postgres, f"SELECT * FROM {schema}.fct_transactions")}
