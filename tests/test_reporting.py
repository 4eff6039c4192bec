"""The daily KPI report: a PNG of daily GBP revenue and success rate, written under the data dir
and shown in the Dagster UI, whose figures are the marts' own."""

from __future__ import annotations

import base64
import io
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from PIL import Image

from txstream_dagster.db.logins import Login
from txstream_dagster.defs.reporting import assets as reporting_assets
from txstream_dagster.defs.reporting.assets import (
    KpiReportConfig,
    daily_after_the_marts,
    daily_kpi_report,
    report_markdown,
)
from txstream_dagster.defs.reporting.chart import render_kpi_chart
from txstream_dagster.defs.reporting.definitions import defs as reporting_defs
from txstream_dagster.defs.reporting.definitions import reporting_automation_sensor
from txstream_dagster.defs.reporting.kpis import (
    DailyKpi,
    KpiWindow,
    NoChargesYet,
    kpi_window,
    window_for,
    with_every_day,
)
from txstream_dagster.resources import build
from txstream_dagster.settings import load_settings
from warehouse_helpers import BuiltWarehouse, build_pipeline_warehouse

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MONDAY = date(2026, 11, 23)


def kpi(day: date, charges: int, ok: int, revenue: str, missing: int = 0) -> DailyKpi:
    return DailyKpi(day, charges, ok, Decimal(revenue), missing)


WEEK = KpiWindow(
    with_every_day(
        [kpi(MONDAY, 10, 9, "120.50"), kpi(MONDAY + timedelta(days=2), 4, 2, "30.25", missing=1)],
        *window_for(MONDAY + timedelta(days=2), 7),
    ),
    last_day_complete=False,
)


# --- pure parts ----------------------------------------------------------------------------------


def test_a_day_without_charges_is_a_day_of_zeros_not_a_gap():
    assert [day.day for day in WEEK.days] == [MONDAY + timedelta(days=n) for n in range(-4, 3)]
    tuesday = WEEK.days[-2]
    assert (tuesday.charges, tuesday.revenue_gbp, tuesday.success_rate) == (0, Decimal(0), None)


def test_window_figures_add_up_the_days_and_rate_over_all_charges():
    assert (WEEK.charges, WEEK.successful_charges, WEEK.revenue_gbp) == (14, 11, Decimal("150.75"))
    assert WEEK.success_rate == 11 / 14  # over charges, not an average of daily rates
    assert WEEK.charges_without_gbp_rate == 1


def test_chart_is_a_1000_by_480_png():
    png = render_kpi_chart(WEEK)
    assert png.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(png)) as image:
        assert (image.format, image.size) == ("PNG", (1000, 480))


def test_markdown_embeds_the_chart_and_says_what_revenue_leaves_out():
    markdown = report_markdown(WEEK, b"not really a png")
    [uri] = re.findall(r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert base64.b64decode(uri) == b"not really a png"
    assert "| Revenue (GBP) | £150.75 | £30.25 |" in markdown
    assert "2026-11-25 (so far)" in markdown
    assert "| Charges without a GBP rate (not in revenue) | 1 | 1 |" in markdown


def test_report_renders_once_a_day_after_the_marts_with_a_label_the_ui_shows():
    condition = daily_kpi_report.get_asset_spec().automation_condition
    assert condition == daily_after_the_marts()
    assert condition.get_label() == "daily at 07:00 UTC, once marts/agg_daily_revenue has been rebuilt since"
    assert reporting_automation_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert {dep.asset_key for dep in daily_kpi_report.get_asset_spec().deps} == {
        dg.AssetKey(["marts", "agg_daily_revenue"])
    }
    assert reporting_defs.sensors == [reporting_automation_sensor]


@pytest.fixture
def external_warehouse_without_reader_password(monkeypatch):
    url = "postgresql://txstream:owner-pw@127.0.0.1:1/txstream"
    monkeypatch.setenv("TXSTREAM_POSTGRES_URL", url)
    monkeypatch.delenv("TXSTREAM_READER_PASSWORD", raising=False)
    yield build.warehouse(load_settings())


def test_without_a_reader_password_the_report_fails_saying_what_to_set_never_reading_as_the_owner(
    external_warehouse_without_reader_password,
):
    # As Grafana's datasource, which has no fallback to the owner role either.
    result = dg.materialize(
        [daily_kpi_report],
        resources={
            "postgres": external_warehouse_without_reader_password,
            "reports": build.report_folder(load_settings()),
        },
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert "txstream_reader login has no password: set TXSTREAM_READER_PASSWORD" in str(failure.event_specific_data)


# --- against a warehouse the pipeline built ----------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(postgres) -> BuiltWarehouse:
    return build_pipeline_warehouse(postgres)


def materialize_report(postgres, days: int = 30) -> dict:
    result = dg.materialize(
        [daily_kpi_report],
        resources={"postgres": postgres, "reports": build.report_folder(load_settings())},
        run_config=dg.RunConfig(ops={"daily_kpi_report": KpiReportConfig(days=days)}),
    )
    [materialization] = result.asset_materializations_for_node("daily_kpi_report")
    return {key: value.value for key, value in materialization.metadata.items()}


def figures_from_the_facts(postgres, first: date, last: date) -> dict:
    """The same figures, straight from marts.fct_transactions (the report reads the daily aggregate)."""
    [(charges, ok, revenue, missing)] = postgres.fetch_all(
        """SELECT count(*), count(*) FILTER (WHERE is_successful),
                  coalesce(sum(captured_amount_gbp) FILTER (WHERE is_successful), 0),
                  count(*) FILTER (WHERE fx_rate_missing)
           FROM marts.fct_transactions WHERE charge_date BETWEEN %s AND %s""",
        [first, last],
        login=Login.READER,
    )
    return {"charges": charges, "successful_charges": ok, "revenue_gbp": revenue, "charges_without_gbp_rate": missing}


@pytest.mark.slow
def test_report_writes_a_png_under_the_data_dir_and_shows_the_same_one_in_the_ui(postgres, warehouse):
    metadata = materialize_report(postgres)
    path = Path(build.report_folder(load_settings()).path) / f"daily_kpi_report_{metadata['last_day']}.png"
    assert metadata["path"] == str(path)
    png = path.read_bytes()
    assert png.startswith(PNG_SIGNATURE) and 20_000 < len(png) < 500_000
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
        assert image.size == (1000, 480)
    [uri] = re.findall(r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", metadata["report"])
    assert base64.b64decode(uri) == png


@pytest.mark.slow
def test_report_figures_are_what_sql_says_for_the_30_days_ending_today(postgres, warehouse):
    metadata = materialize_report(postgres)
    today = warehouse.end.date()
    first = today - timedelta(days=29)
    assert (metadata["first_day"], metadata["last_day"]) == (first.isoformat(), today.isoformat())
    assert metadata["last_day_complete"] is False  # the history runs up to now
    expected = figures_from_the_facts(postgres, first, today)
    assert expected["charges"] > 1000 and expected["charges_without_gbp_rate"] > 0
    assert metadata["charges"] == expected["charges"]
    assert metadata["successful_charges"] == expected["successful_charges"]
    assert metadata["charges_without_gbp_rate"] == expected["charges_without_gbp_rate"]
    assert metadata["revenue_gbp"] == float(round(expected["revenue_gbp"], 2))
    assert metadata["success_rate"] == pytest.approx(expected["successful_charges"] / expected["charges"], abs=1e-12)
    last_day = figures_from_the_facts(postgres, today, today)
    assert metadata["last_day_revenue_gbp"] == float(round(last_day["revenue_gbp"], 2))


@pytest.mark.slow
def test_a_shorter_window_covers_exactly_that_many_days(postgres, warehouse):
    metadata = materialize_report(postgres, days=7)
    first = warehouse.end.date() - timedelta(days=6)
    assert metadata["first_day"] == first.isoformat()
    assert metadata["charges"] == figures_from_the_facts(postgres, first, warehouse.end.date())["charges"]


@pytest.mark.slow
def test_report_reads_the_marts_as_the_read_only_role_which_cannot_write(postgres, warehouse, monkeypatch):
    # Regression: the report read marts.agg_daily_revenue as the owner role; read paths use txstream_reader.
    seen = {}

    def kpi_window_noting_the_role(conn, days, today):
        [(seen["role"],)] = conn.execute("SELECT current_user").fetchall()
        try:
            conn.execute("DELETE FROM marts.agg_daily_revenue")
        except psycopg.errors.InsufficientPrivilege:
            seen["write"] = "refused"
        conn.rollback()
        return kpi_window(conn, days, today)

    monkeypatch.setattr(reporting_assets, "kpi_window", kpi_window_noting_the_role)
    metadata = materialize_report(postgres)
    assert seen == {"role": "txstream_reader", "write": "refused"}
    assert metadata["charges"] > 0


@pytest.mark.slow
def test_no_window_before_the_first_charge_and_the_error_says_what_to_do(postgres, warehouse):
    with pytest.raises(NoChargesYet, match="build the marts first"), postgres.connect(login=Login.READER) as conn:
        kpi_window(conn, 30, today=date(2000, 1, 1))
