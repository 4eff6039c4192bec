"""Dagster-side checks on the marts that dbt tests cannot express as pass/fail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from txstream_dagster.db.logins import Login
from txstream_dagster.defs.dbt.translator import check_automation_condition
from txstream_dagster.resources import PostgresResource

FCT_TRANSACTIONS = dg.AssetKey(["marts", "fct_transactions"])
FLAGGED_RECORDS_VIEW = dg.AssetKey(["monitoring", "flagged_records"])
# How many flagged objects the check names in its metadata (the newest first); the view holds them all.
FLAGGED_RECORDS_SHOWN = 50
# A day's rates exist once the ECB has published (about 16:00 CET) and the daily
# forex run has fetched them; charges younger than this are expected to wait.
FX_RATE_GRACE_DAYS = 2


@dataclass(frozen=True)
class MissingRates:
    currency_code: str
    charge_count: int
    oldest_charge_date: date


def overdue(missing: list[MissingRates], today: date) -> list[MissingRates]:
    """Currencies whose oldest unconverted charge is past the grace period."""
    cutoff = today - timedelta(days=FX_RATE_GRACE_DAYS)
    return [m for m in missing if m.oldest_charge_date <= cutoff]


def missing_rates_table(missing: list[MissingRates]) -> str:
    lines = ["| currency | charges | oldest charge date |", "| --- | ---: | --- |"]
    lines += [f"| {m.currency_code.upper()} | {m.charge_count} | {m.oldest_charge_date} |" for m in missing]
    return "\n".join(lines)


@dg.asset_check(
    asset=FCT_TRANSACTIONS,
    name="fx_rate_missing_charges",
    description=(
        "Counts charges kept without a GBP amount because no rate applies on their date. "
        f"Warns when any is older than {FX_RATE_GRACE_DAYS} days: a currency the forex source "
        "does not publish, or a day it failed to fetch."
    ),
    automation_condition=check_automation_condition(),
)
def fx_rate_missing_charges(postgres: PostgresResource) -> dg.AssetCheckResult:
    rows = postgres.fetch_all(
        """SELECT currency_code, count(*), min(charge_date)
           FROM marts.fct_transactions
           WHERE fx_rate_missing
           GROUP BY currency_code
           ORDER BY count(*) DESC, currency_code""",
        login=Login.READER,
    )
    missing = [MissingRates(code, count, oldest) for code, count, oldest in rows]
    late = overdue(missing, datetime.now(UTC).date())  # charge dates are UTC days
    return dg.AssetCheckResult(
        passed=not late,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "fx_rate_missing_charges": sum(m.charge_count for m in missing),
            "overdue_charges": sum(m.charge_count for m in late),
            "currencies": dg.MetadataValue.md(missing_rates_table(missing) if missing else "none"),
        },
    )


@dataclass(frozen=True)
class FlaggedRecord:
    object_id: str
    object_type: str
    charge_id: str | None  # balance transactions and payouts have none
    flag: str
    detail: str


def flagged_records_table(records: list[FlaggedRecord]) -> str:
    lines = ["| object | type | charge | flag | detail |", "| --- | --- | --- | --- | --- |"]
    lines += [
        "| " + " | ".join(_md_cell(cell) for cell in (r.object_id, r.object_type, r.charge_id, r.flag, r.detail)) + " |"
        for r in records
    ]
    return "\n".join(lines)


def _md_cell(text: str | None) -> str:
    # Ids are whatever Stripe (or a producer) sent: a `|` or a line break would break the table. Balance
    # transactions and payouts have no charge: an empty cell.
    return " ".join((text or "").split()).replace("|", "\\|")


@dg.asset_check(
    asset=FCT_TRANSACTIONS,
    name="flagged_records",
    additional_deps=[FLAGGED_RECORDS_VIEW],
    description=(
        "Warns while the marts hold Stripe objects they cannot fully use (monitoring.flagged_records), "
        "naming them: a currency missing from currencies.csv, a status txstream does not know, a refund or "
        "dispute whose charge has not landed or that is in another currency than its charge. Such objects "
        "never stop the build; their amounts are left null or out, never guessed."
    ),
    automation_condition=check_automation_condition(),
)
def flagged_records(postgres: PostgresResource) -> dg.AssetCheckResult:
    counts = dict(
        postgres.fetch_all(
            "SELECT flag, count(*) FROM monitoring.flagged_records GROUP BY flag ORDER BY flag", login=Login.READER
        )
    )
    newest = [
        FlaggedRecord(*row)
        for row in postgres.fetch_all(
            """SELECT object_id, object_type, charge_id, flag, detail
               FROM monitoring.flagged_records
               ORDER BY ingested_at DESC, object_id, flag
               LIMIT %s""",
            (FLAGGED_RECORDS_SHOWN,),
            login=Login.READER,
        )
    ]
    return dg.AssetCheckResult(
        passed=not counts,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "flagged_records": sum(counts.values()),
            "by_flag": dg.MetadataValue.json(counts),
            "records": dg.MetadataValue.md(flagged_records_table(newest) if newest else "none"),
        },
    )
