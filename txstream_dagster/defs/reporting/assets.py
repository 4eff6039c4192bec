"""`daily_kpi_report`: a PNG of daily GBP revenue and success rate, shown in the Dagster UI.

Unpartitioned on purpose: the marts it reads are unpartitioned and change in the
past (a refund or a late GBP rate rewrites an old day), so a per-day partition
would go stale without anyone knowing. Each materialization renders the whole
trailing window from the current marts; the PNG of each run stays in the
`reports` folder (`<data_dir>/reports/`), named after the window's last day.
"""

import base64
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
from pydantic import Field

from txstream_dagster.db.logins import Login
from txstream_dagster.defs.reporting.kpis import KpiWindow, NoChargesYet, kpi_window
from txstream_dagster.defs.reporting.resources import ReportFolder
from txstream_dagster.resources import PostgresResource

AGG_DAILY_REVENUE = dg.AssetKey(["marts", "agg_daily_revenue"])
REPORT_CRON = "0 7 * * *"  # after the night's charges and the evening's forex rates are in


class KpiReportConfig(dg.Config):
    days: int = Field(
        default=30, ge=1, le=366, description="UTC days the report covers, ending on the newest day with charges."
    )


def daily_after_the_marts() -> dg.AutomationCondition:
    # on_cron: once per day, and only after agg_daily_revenue was rebuilt since
    # the tick. Eager would re-render on every dbt build (every micro-batch).
    return dg.AutomationCondition.on_cron(REPORT_CRON, cron_timezone="UTC").with_label(
        "daily at 07:00 UTC, once marts/agg_daily_revenue has been rebuilt since"
    )


def _gbp(value: Decimal) -> str:
    return f"£{value:,.2f}"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def report_markdown(window: KpiWindow, png: bytes) -> str:
    """The chart inline (a data URI, as Dagster's own examples embed images) and its figures. Pure."""
    last = window.last_day
    last_label = f"{last.day} (so far)" if not window.last_day_complete else str(last.day)
    image = base64.b64encode(png).decode("ascii")
    return "\n".join(
        [
            f"![Daily revenue in GBP and success rate](data:image/png;base64,{image})",
            "",
            f"| | {window.first_day} – {last.day} | {last_label} |",
            "| --- | ---: | ---: |",
            f"| Revenue (GBP) | {_gbp(window.revenue_gbp)} | {_gbp(last.revenue_gbp)} |",
            f"| Charges | {window.charges:,} | {last.charges:,} |",
            f"| Success rate | {_rate(window.success_rate)} | {_rate(last.success_rate)} |",
            f"| Charges without a GBP rate (not in revenue) | {window.charges_without_gbp_rate:,} "
            f"| {last.charges_without_gbp_rate:,} |",
        ]
    )


def report_metadata(window: KpiWindow, png: bytes, path: Path) -> dict[str, dg.MetadataValue]:
    """What the UI shows: the report, where the PNG is, and the figures as numbers (pence-rounded GBP). Pure."""
    last = window.last_day
    return {
        "report": dg.MetadataValue.md(report_markdown(window, png)),
        "path": dg.MetadataValue.path(path),
        "first_day": dg.MetadataValue.text(window.first_day.isoformat()),
        "last_day": dg.MetadataValue.text(last.day.isoformat()),
        "last_day_complete": dg.MetadataValue.bool(window.last_day_complete),
        "revenue_gbp": dg.MetadataValue.float(float(round(window.revenue_gbp, 2))),
        "charges": dg.MetadataValue.int(window.charges),
        "successful_charges": dg.MetadataValue.int(window.successful_charges),
        "success_rate": dg.FloatMetadataValue(window.success_rate),
        "charges_without_gbp_rate": dg.MetadataValue.int(window.charges_without_gbp_rate),
        "last_day_revenue_gbp": dg.MetadataValue.float(float(round(last.revenue_gbp, 2))),
        "last_day_success_rate": dg.FloatMetadataValue(last.success_rate),
    }


@dg.asset(
    group_name="reporting",
    kinds={"python", "postgres"},
    deps=[AGG_DAILY_REVENUE],
    automation_condition=daily_after_the_marts(),
)
def daily_kpi_report(
    context: dg.AssetExecutionContext, config: KpiReportConfig, postgres: PostgresResource, reports: ReportFolder
) -> dg.MaterializeResult:
    """Daily GBP revenue and success rate for the 30 UTC days up to the newest day with charges, as a PNG."""
    # matplotlib costs ~0.6 s to import: only runs that render pay it, not every code-location load.
    from txstream_dagster.defs.reporting.chart import render_kpi_chart

    today = datetime.now(UTC).date()  # revenue days are UTC days
    try:
        # A read path: as the read-only role, like the dashboards, not as the owner.
        with postgres.connect(login=Login.READER) as conn:
            window = kpi_window(conn, config.days, today)
    except NoChargesYet as exc:
        raise dg.Failure(str(exc)) from None
    png = render_kpi_chart(window)
    path = reports.write(f"daily_kpi_report_{window.last_day.day}.png", png)
    context.log.info(
        f"{window.first_day} – {window.last_day.day}: {_gbp(window.revenue_gbp)} from {window.charges:,} charges, "
        f"success rate {_rate(window.success_rate)}; chart at {path}"
    )
    return dg.MaterializeResult(metadata=report_metadata(window, png, path))
