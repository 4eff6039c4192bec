"""The Grafana dashboards (grafana/dashboards/*.json): valid for the Grafana we deploy, wired to
the provisioned warehouse datasource, and every panel's SQL — expanded as Grafana expands it —
returns rows of the columns the panel shows, read as the read-only role from a warehouse the
pipeline built.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from grafana_helpers import (
    REPO,
    ExpansionError,
    Selection,
    TimeRange,
    all_panels,
    auto_interval,
    dashboard_files,
    datasource_refs,
    expand,
    go_float,
    go_rfc3339_nano,
    interval_options,
    interval_selection,
    load_dashboard,
    parse_interval,
    provisioned_datasource,
    query_panels,
    referenced_variables,
)
from txstream_dagster.db.logins import Login
from warehouse_helpers import BuiltWarehouse, build_pipeline_warehouse

# The dashboard JSON schema version each Grafana release writes (apps/dashboard/pkg/migration/
# schemaversion: v41 shipped in 12.0 and 12.1, v42 arrived in 12.2). Bump both together.
SCHEMA_VERSION_OF_GRAFANA = {"12.0": 41, "12.1": 41}
# Views that describe the pipeline *now*: a panel reading only these has nothing to filter by time.
CURRENT_STATE_VIEWS = {
    "monitoring.stream_lag_latest",
    "monitoring.pipeline_freshness",
    "monitoring.dbt_model_freshness",
    "monitoring.fx_rate_missing_by_currency",
    "monitoring.stripe_reconciliation",  # its own window: the days the reconciliation keeps in view
    "marts.fct_payouts",  # the finance dashboard's upcoming payouts: those on their way now
}
TIME_MACROS = ("$__timeFilter(", "$__timeGroupAlias(", "$__timeGroup(", "$__timeFrom()", "$__timeTo()")
GRAFANA_BUILTIN_ANNOTATIONS = {"type": "grafana", "uid": "-- Grafana --"}
NUMERIC_TYPES = (int, float, Decimal)
EXACT = Decimal("1e-12")

DASHBOARDS = {path.stem: load_dashboard(path) for path in dashboard_files()}
PANELS = [
    pytest.param(name, panel, id=f"{name}/{panel['title']}")
    for name, dashboard in DASHBOARDS.items()
    for panel in query_panels(dashboard)
]


def panel_sql(panel: dict) -> list[str]:
    return [target["rawSql"] for target in panel["targets"]]


def variable_sql(variable: dict) -> str:
    query = variable["query"]
    return query if isinstance(query, str) else query["rawSql"]


def every_sql(dashboard: dict) -> list[str]:
    return [sql for panel in query_panels(dashboard) for sql in panel_sql(panel)] + [
        variable_sql(v) for v in dashboard["templating"]["list"] if v["type"] == "query"
    ]


def variable_named(dashboard: str, name: str) -> dict:
    [variable] = [v for v in DASHBOARDS[dashboard]["templating"]["list"] if v["name"] == name]
    return variable


def pinned_grafana_version() -> str:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    image = compose["services"]["grafana"]["image"]
    reference = image.partition("@")[0]  # the tag, without the pinned digest
    return reference.rpartition(":")[2]


# --- the JSON itself ---------------------------------------------------------------------------------


def test_the_payments_finance_and_pipeline_dashboards_exist():
    titles = {dashboard["title"] for dashboard in DASHBOARDS.values()}
    assert titles == {"txstream · Payments overview", "txstream · Finance", "txstream · Pipeline health"}
    assert not (REPO / "grafana" / "dashboards" / ".gitkeep").exists()


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_has_the_schema_version_of_the_grafana_compose_deploys(name):
    major_minor = ".".join(pinned_grafana_version().split(".")[:2])
    assert major_minor in SCHEMA_VERSION_OF_GRAFANA, (
        f"docker-compose.yml pins Grafana {pinned_grafana_version()}: add its dashboard schema version to "
        "SCHEMA_VERSION_OF_GRAFANA and update the dashboards' schemaVersion"
    )
    assert DASHBOARDS[name]["schemaVersion"] == SCHEMA_VERSION_OF_GRAFANA[major_minor]


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_has_a_stable_uid_a_title_and_refreshes_itself(name):
    dashboard = DASHBOARDS[name]
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["title"].strip()
    assert dashboard["id"] is None  # Grafana assigns ids; a fixed one clashes across instances
    assert dashboard["refresh"] == "30s"
    assert dashboard["time"]["to"] == "now"


def test_dashboard_uids_are_unique():
    uids = [dashboard["uid"] for dashboard in DASHBOARDS.values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("name", DASHBOARDS)
def test_panel_ids_are_unique_and_every_panel_fits_the_24_column_grid_without_overlap(name):
    panels = list(all_panels(DASHBOARDS[name]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}: {sorted(ids)}"
    boxes = []
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} runs off the grid"
        boxes.append((panel["title"], grid["x"], grid["y"], grid["x"] + grid["w"], grid["y"] + grid["h"]))
    for i, (title, x0, y0, x1, y1) in enumerate(boxes):
        for other, u0, v0, u1, v1 in boxes[i + 1 :]:
            assert x1 <= u0 or u1 <= x0 or y1 <= v0 or v1 <= y0, f"{title} overlaps {other}"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_datasource_reference_is_the_provisioned_warehouse(name):
    warehouse = provisioned_datasource()
    expected = {"type": warehouse["type"], "uid": warehouse["uid"]}
    refs = list(datasource_refs(DASHBOARDS[name]))
    assert refs
    for ref in refs:
        assert ref in (expected, GRAFANA_BUILTIN_ANNOTATIONS), f"{name}: datasource {ref} is not {expected}"
    for panel in query_panels(DASHBOARDS[name]):
        assert panel["datasource"] == expected
        assert all(target["datasource"] == expected for target in panel["targets"])


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_variable_the_sql_uses_is_defined_on_the_dashboard(name):
    dashboard = DASHBOARDS[name]
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    used = set().union(*(referenced_variables(sql) for sql in every_sql(dashboard)))
    assert used <= defined, f"{name} uses undefined variables {used - defined}"


def test_payments_dashboard_filters_by_any_set_of_currencies():
    currency = variable_named("payments-overview", "currency")
    assert (currency["name"], currency["multi"], currency["includeAll"]) == ("currency", True, True)
    assert currency["current"]["value"] == ["$__all"]
    for panel in query_panels(DASHBOARDS["payments-overview"]):
        for sql in panel_sql(panel):
            # A multi-value selection expands to 'gbp','usd': valid only inside an IN list.
            assert sql.count("$currency") == sql.count("IN ($currency)") > 0, panel["title"]


def test_payments_time_series_are_bucketed_by_an_interval_variable_defaulting_to_auto():
    interval = variable_named("payments-overview", "interval")
    assert interval["type"] == "interval" and interval["auto"] is True
    assert interval_options(interval) == ["1m", "5m", "15m", "1h", "6h", "1d"]
    assert interval["current"]["value"] == "$__auto_interval_interval"
    assert interval["auto_min"] == provisioned_datasource()["jsonData"]["timeInterval"]  # no finer than the data
    series = [p for p in query_panels(DASHBOARDS["payments-overview"]) if p["type"] == "timeseries"]
    assert series
    for panel in series:
        for sql in panel_sql(panel):
            assert re.search(r"\$__timeGroupAlias\(\w+\.\w+, \$interval\)", sql), panel["title"]
            # A rate per bucket must divide by the bucket the query groups by, not by Grafana's $__interval.
            assert "$__interval" not in sql, panel["title"]


@pytest.mark.parametrize("name", DASHBOARDS)
def test_no_sql_reads_raw_ops_or_staging_only_marts_and_monitoring(name):
    for sql in every_sql(DASHBOARDS[name]):
        assert not re.search(r"\b(raw|ops|staging)\.", sql, re.IGNORECASE), sql
        assert re.search(r"\b(marts|monitoring)\.", sql), sql


@pytest.mark.parametrize("name", DASHBOARDS)
def test_panel_sql_follows_the_time_range_unless_it_shows_the_current_state(name):
    for panel in query_panels(DASHBOARDS[name]):
        for sql in panel_sql(panel):
            if any(macro in sql for macro in TIME_MACROS):
                continue
            relations = set(re.findall(r"\b(?:marts|monitoring)\.\w+", sql))
            assert relations <= CURRENT_STATE_VIEWS, (
                f"{panel['title']} reads {relations - CURRENT_STATE_VIEWS} without a Grafana time macro"
            )


@pytest.mark.parametrize("name", DASHBOARDS)
def test_time_series_panels_ask_for_time_series_and_the_rest_for_tables(name):
    for panel in query_panels(DASHBOARDS[name]):
        expected = "time_series" if panel["type"] == "timeseries" else "table"
        assert {target["format"] for target in panel["targets"]} == {expected}, panel["title"]
        if panel["type"] == "timeseries":
            assert all(re.search(r"\$__timeGroupAlias\(", sql) for sql in panel_sql(panel)), panel["title"]


# --- the expander against Grafana's own expectations (macros_test.go) -------------------------------

GRAFANA_TEST_RANGE = TimeRange(
    datetime(2018, 4, 12, 18, tzinfo=UTC), datetime(2018, 4, 12, 18, 5, tzinfo=UTC), timedelta(minutes=1)
)


@pytest.mark.parametrize(
    ("sql", "expanded"),
    [
        (
            "WHERE $__timeFilter(time_column)",
            "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'",
        ),
        ("select $__timeFrom()", "select '2018-04-12T18:00:00Z'"),
        ("select $__timeTo()", "select '2018-04-12T18:05:00Z'"),
        ("SELECT $__timeGroup(time_column,'5m')", "SELECT floor(extract(epoch from time_column)/300)*300"),
        (
            "SELECT $__timeGroupAlias(time_column,'5m')",
            'SELECT floor(extract(epoch from time_column)/300)*300 AS "time"',
        ),
        ("$__timeGroup(time_column , '5m')", "floor(extract(epoch from time_column)/300)*300"),
        # pre-5.3 compatibility: followed by a comma, $__timeGroup gets the alias
        (
            "SELECT $__timeGroup(time_column,'5m'), value",
            'SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value',
        ),
        (
            "SELECT $__timeGroupAlias(t, $__interval), $__interval_ms",
            'SELECT floor(extract(epoch from t)/60)*60 AS "time", 60000',
        ),
    ],
)
def test_macros_expand_exactly_as_grafana_postgres_expands_them(sql, expanded):
    assert expand(sql, GRAFANA_TEST_RANGE) == expanded


def test_interval_variable_expands_to_the_chosen_bucket_or_grafanas_auto_interval():
    interval = variable_named("payments-overview", "interval")
    sql = "SELECT $__timeGroupAlias(t, $interval), 60 / extract(epoch from interval '$interval')"
    day = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), timedelta(minutes=2))
    assert expand(sql, day, {"interval": interval_selection(interval, day, "1h")}) == (
        "SELECT floor(extract(epoch from t)/3600)*3600 AS \"time\", 60 / extract(epoch from interval '1h')"
    )
    # auto: 24 h / 100 steps = 14.4 min, which rangeUtil.roundInterval makes 15m.
    assert interval_selection(interval, day).values == ["15m"]
    with pytest.raises(ExpansionError, match="not an option"):
        interval_selection(interval, day, "2m")


def test_auto_interval_rounds_like_grafana_and_never_goes_below_its_minimum():
    def span(delta: timedelta) -> TimeRange:
        start = datetime(2024, 1, 1, tzinfo=UTC)
        return TimeRange(start, start + delta, timedelta(minutes=1))

    assert auto_interval(span(timedelta(hours=6)), 100, "1m") == "5m"
    assert auto_interval(span(timedelta(days=7)), 100, "1m") == "2h"
    assert auto_interval(span(timedelta(days=90)), 100, "1m") == "12h"
    assert auto_interval(span(timedelta(minutes=30)), 100, "1m") == "1m"
    assert auto_interval(span(timedelta(minutes=30)), 30, "10s") == "1m"  # Grafana's defaults


def test_rfc3339_nano_drops_trailing_zeros_like_go():
    assert go_rfc3339_nano(datetime(1960, 2, 1, 7, 0, 0, 500_000, tzinfo=UTC)) == "1960-02-01T07:00:00.5Z"


def test_bucket_widths_print_as_go_prints_floats():
    assert [go_float(s) for s in (60.0, 86400.0, 0.02, 1e6, 2592000.0)] == ["60", "86400", "0.02", "1e+06", "2.592e+06"]


def test_multi_value_variables_become_quoted_literals_with_quotes_doubled():
    currency = Selection(["gbp", "o'brien"], multi=True, include_all=True)
    assert expand("x IN ($currency) OR y IN (${currency})", GRAFANA_TEST_RANGE, {"currency": currency}) == (
        "x IN ('gbp','o''brien') OR y IN ('gbp','o''brien')"
    )


def test_unknown_macros_fail_rather_than_reach_postgres():
    with pytest.raises(ExpansionError, match="unknown macro"):
        expand("SELECT $__timeBucket(x)", GRAFANA_TEST_RANGE)


# --- every panel against a warehouse the pipeline built --------------------------------------------


@pytest.fixture(scope="module")
def warehouse(postgres) -> BuiltWarehouse:
    return build_pipeline_warehouse(postgres)


@pytest.fixture(scope="module")
def reader(warehouse, postgres):
    with postgres.connect(login=Login.READER, autocommit=True) as conn:
        conn.row_factory = dict_row
        yield conn


def run(reader, sql: str) -> tuple[list[str], list[dict]]:
    cursor = reader.execute(sql)
    return [column.name for column in cursor.description], cursor.fetchall()


def currency_options(reader, time_range: TimeRange) -> list[str]:
    variable = variable_named("payments-overview", "currency")
    _, rows = run(reader, expand(variable_sql(variable), time_range))
    return [row["__value"] for row in rows]


def variables_for(
    name: str, reader, time_range: TimeRange, currencies: list[str] | None = None, interval: str | None = None
) -> dict:
    if name != "payments-overview":
        return {}
    # "All" without a custom all-value: Grafana sends every option of the variable.
    return {
        "currency": Selection(currencies or currency_options(reader, time_range), multi=True, include_all=True),
        "interval": interval_selection(variable_named(name, "interval"), time_range, interval),
    }


def whole_history(warehouse: BuiltWarehouse) -> TimeRange:
    return TimeRange(warehouse.start - timedelta(hours=1), warehouse.end + timedelta(minutes=1), timedelta(hours=1))


def assert_panel_columns(panel: dict, columns: list[str], rows: list[dict]) -> None:
    title = panel["title"]
    assert len(columns) == len(set(columns)), f"{title}: duplicate column names {columns}"
    if panel["type"] == "timeseries":
        assert "time" in columns, f"{title}: a time series needs a `time` column, got {columns}"
        times = [row["time"] for row in rows]
        assert times == sorted(times), f"{title}: Grafana wants time series ordered by time"
        values = [c for c in columns if c != "time" and any(isinstance(row[c], NUMERIC_TYPES) for row in rows)]
        assert values, f"{title}: no numeric value column in {columns}"
    else:
        assert "time" not in columns
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"]["id"] == "byName":
            assert override["matcher"]["options"] in columns, (
                f"{title}: an override styles column {override['matcher']['options']!r}, the query returns {columns}"
            )
    label = re.fullmatch(r"\$\{__field\.labels\.(\w+)\}", panel["fieldConfig"]["defaults"].get("displayName", ""))
    if label:
        assert label.group(1) in columns and all(isinstance(row[label.group(1)], str) for row in rows), (
            f"{title}: series are named after label {label.group(1)!r}, which must be a text column"
        )


@pytest.mark.slow
def test_the_read_only_role_cannot_read_raw_ops_or_staging(reader):
    for relation in ("raw.transactions", "ops.stream_batches", "staging.stg_stripe__charges"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(f"SELECT 1 FROM {relation} LIMIT 1")


@pytest.mark.slow
def test_currency_variable_offers_every_currency_charged_in(reader, warehouse, postgres):
    charged = {
        row[0]
        for row in postgres.fetch_all("SELECT DISTINCT currency_code FROM marts.fct_transactions", login=Login.READER)
    }
    assert set(currency_options(reader, whole_history(warehouse))) == charged
    assert {"gbp", "usd", "eur", "aed"} <= charged


@pytest.mark.slow
@pytest.mark.parametrize(("name", "panel"), PANELS)
def test_panel_query_returns_rows_of_its_columns_over_the_whole_history(name, panel, reader, warehouse):
    time_range = whole_history(warehouse)
    for sql in panel_sql(panel):
        columns, rows = run(reader, expand(sql, time_range, variables_for(name, reader, time_range)))
        assert rows, f"{panel['title']} shows nothing for a warehouse the pipeline built"
        assert_panel_columns(panel, columns, rows)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "panel"), PANELS)
def test_panel_query_runs_for_the_last_six_hours_and_two_currencies(name, panel, reader, warehouse):
    time_range = TimeRange(warehouse.end - timedelta(hours=6), warehouse.end, timedelta(minutes=1))
    for sql in panel_sql(panel):
        expanded = expand(sql, time_range, variables_for(name, reader, time_range, ["gbp", "usd"]))
        columns, rows = run(reader, expanded)
        if rows:
            assert_panel_columns(panel, columns, rows)


@pytest.mark.slow
@pytest.mark.parametrize("interval", ["1m", "15m", "1d"])
def test_transactions_per_minute_at_any_interval_add_up_to_the_charges(interval, reader, warehouse, postgres):
    # Guards the per-minute rate dividing by a bucket other than the one the query groups by.
    [per_minute] = [p for p in query_panels(DASHBOARDS["payments-overview"]) if p["title"] == "Transactions per minute"]
    time_range = whole_history(warehouse)
    variables = variables_for("payments-overview", reader, time_range, interval=interval)
    _, rows = run(reader, expand(panel_sql(per_minute)[0], time_range, variables))
    bucket = parse_interval(interval)
    [(charges,)] = postgres.fetch_all(
        "SELECT count(*) FROM marts.fct_transactions WHERE created_at BETWEEN %s AND %s",
        [time_range.start, time_range.end],
        login=Login.READER,
    )
    assert charges > 0
    assert all(row["time"] % int(bucket.total_seconds()) == 0 for row in rows)  # grouped by the chosen bucket
    per_minute = sum(float(row["charges_per_minute"]) for row in rows)
    assert per_minute * (bucket / timedelta(minutes=1)) == pytest.approx(charges)


@pytest.mark.slow
def test_revenue_stat_for_one_currency_and_day_is_that_days_captured_gbp(reader, warehouse, postgres):
    [revenue] = [p for p in query_panels(DASHBOARDS["payments-overview"]) if p["title"] == "Revenue (GBP)"]
    day = warehouse.end.date() - timedelta(days=3)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    time_range = TimeRange(start, start + timedelta(days=1) - timedelta(microseconds=1), timedelta(hours=1))
    _, [row] = run(
        reader,
        expand(panel_sql(revenue)[0], time_range, {"currency": Selection(["usd"], multi=True, include_all=True)}),
    )
    [(expected,)] = postgres.fetch_all(
        "SELECT coalesce(sum(captured_amount_gbp), 0) FROM marts.fct_transactions "
        "WHERE charge_date = %s AND currency_code = 'usd' AND is_successful",
        [day],
        login=Login.READER,
    )
    assert expected > 0
    assert row["revenue_gbp"] == expected


@pytest.mark.slow
def test_charges_without_a_rate_are_counted_not_hidden(reader, warehouse, postgres):
    [missing] = [
        p
        for p in query_panels(DASHBOARDS["payments-overview"])
        if p["title"] == "Charges without a GBP rate" and p["type"] == "stat"
    ]
    time_range = whole_history(warehouse)
    variables = variables_for("payments-overview", reader, time_range)
    _, [row] = run(reader, expand(panel_sql(missing)[0], time_range, variables))
    [(without_rate, aed_without_rate)] = postgres.fetch_all(
        """SELECT count(*) FILTER (WHERE fx_rate_missing),
                  count(*) FILTER (WHERE fx_rate_missing AND currency_code = 'aed')
           FROM marts.fct_transactions WHERE created_at BETWEEN %s AND %s""",
        [time_range.start, time_range.end],
        login=Login.READER,
    )
    assert aed_without_rate > 0  # ECB publishes no AED rate
    assert row["charges_without_gbp_rate"] == without_rate


# --- the finance dashboard against the money that landed -------------------------------------------


def finance_panel(title: str) -> dict:
    [panel] = [p for p in query_panels(DASHBOARDS["finance"]) if p["title"] == title]
    return panel


def one_row(reader, title: str, time_range: TimeRange) -> dict:
    _, [row] = run(reader, expand(panel_sql(finance_panel(title))[0], time_range))
    return row


def one_day(warehouse: BuiltWarehouse, days_before_end: int) -> TimeRange:
    day = warehouse.end.date() - timedelta(days=days_before_end)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return TimeRange(start, start + timedelta(days=1) - timedelta(microseconds=1), timedelta(hours=1))


@pytest.mark.slow
def test_every_balance_transaction_and_payout_that_landed_is_in_the_marts(warehouse, postgres):
    landed = dict(
        postgres.fetch_all(
            "SELECT object_type, count(*) FROM raw.transactions "
            "WHERE object_type IN ('balance_transaction', 'payout') GROUP BY 1",
            login=Login.TRANSFORMER,
        )
    )
    [(balance_transactions, payouts)] = postgres.fetch_all(
        "SELECT (SELECT count(*) FROM marts.fct_balance_transactions), (SELECT count(*) FROM marts.fct_payouts)",
        login=Login.READER,
    )
    assert landed["balance_transaction"] > landed["payout"] > 0
    assert (balance_transactions, payouts) == (landed["balance_transaction"], landed["payout"])


@pytest.mark.slow
def test_the_synthetic_fees_follow_their_rule_and_every_payout_reconciles(warehouse, postgres):
    checks = {e.check_name: e.passed for e in warehouse.dbt_build.get_asset_check_evaluations()}
    assert checks["fct_balance_transactions_fees_follow_the_rule"] is True
    assert checks["fct_payouts_paid_and_in_transit_payouts_reconcile"] is True
    [(payouts, reconciled)] = postgres.fetch_all(
        "SELECT count(*), count(*) FILTER (WHERE is_reconciled) FROM marts.fct_payouts", login=Login.READER
    )
    assert payouts == reconciled > 0


@pytest.mark.slow
def test_fee_and_net_stats_for_a_day_are_what_stripes_balance_transactions_say(reader, warehouse, postgres):
    time_range = one_day(warehouse, 3)
    # Recomputed from the landed payloads, as the transformer reads them: fee and net are pence (GBP account).
    [(gross, fees, net)] = postgres.fetch_all(
        """SELECT sum(amount) FILTER (WHERE payload->>'reporting_category' = 'charge') / 100.0,
                  sum((payload->>'fee')::bigint) FILTER (WHERE payload->>'type' <> 'payout') / 100.0,
                  sum((payload->>'net')::bigint) FILTER (WHERE payload->>'type' <> 'payout') / 100.0
           FROM raw.transactions
           WHERE object_type = 'balance_transaction' AND currency = 'gbp' AND created_at BETWEEN %s AND %s""",
        [time_range.start, time_range.end],
        login=Login.TRANSFORMER,
    )
    assert gross > fees > 0
    assert one_row(reader, "Gross charges (GBP)", time_range)["gross_charges_gbp"] == gross
    assert one_row(reader, "Stripe fees (GBP)", time_range)["fees_gbp"] == fees
    assert one_row(reader, "Net after fees (GBP)", time_range)["net_gbp"] == net
    assert abs(one_row(reader, "Fees, % of gross charges", time_range)["fees_percent"] - 100 * fees / gross) < EXACT
    # The daily series adds up to the same day's figures.
    _, [day] = run(reader, expand(panel_sql(finance_panel("Gross charges, fees and net (GBP, by day)"))[0], time_range))
    assert (day["gross_charges_gbp"], day["fees_gbp"], day["net_gbp"]) == (gross, fees, net)


@pytest.mark.slow
def test_payout_panels_show_the_payouts_that_landed(reader, warehouse, postgres):
    time_range = whole_history(warehouse)
    landed = {
        payout_id: (status, Decimal(amount) / 100)
        for payout_id, status, amount in postgres.fetch_all(
            "SELECT object_id, status, amount FROM raw.transactions WHERE object_type = 'payout'",
            login=Login.TRANSFORMER,
        )
    }
    paid = sum(amount for status, amount in landed.values() if status == "paid")
    upcoming = {p: amount for p, (status, amount) in landed.items() if status in ("pending", "in_transit")}
    assert paid > 0 and upcoming
    assert one_row(reader, "Paid out (GBP)", time_range)["paid_out_gbp"] == paid
    assert one_row(reader, "Upcoming payouts (GBP)", time_range)["upcoming_payouts_gbp"] == sum(upcoming.values())
    _, rows = run(reader, expand(panel_sql(finance_panel("Upcoming payouts"))[0], time_range))
    assert {row["payout_id"]: row["amount"] for row in rows} == upcoming
    assert all(row["reconciled"] for row in rows)
    _, rows = run(reader, expand(panel_sql(finance_panel("Payouts created in the time range"))[0], time_range))
    assert {row["payout_id"] for row in rows} == set(landed)
    assert all(row["unreconciled_amount"] == 0 for row in rows)


@pytest.mark.slow
def test_fx_slippage_panel_matches_a_recompute_from_the_landed_charges_and_rates(reader, warehouse, postgres):
    # Reference value of each converted USD charge (its amount at the charge date's GBP rate) less what
    # its balance transaction credited, recomputed from raw rows and raw rates, apart from the models.
    [(charges, reference, settled)] = postgres.fetch_all(
        """SELECT count(*), sum(c.amount / 100.0 / r.rate), sum(b.amount / 100.0)
           FROM raw.transactions AS b
           JOIN raw.transactions AS c ON c.object_id = b.payload->>'source' AND c.object_type = 'charge'
           JOIN raw.forex_rates AS r
             ON r.base = 'gbp' AND r.quote = c.currency AND r.rate_date = (c.created_at AT TIME ZONE 'UTC')::date
           WHERE b.object_type = 'balance_transaction' AND b.payload->>'type' = 'charge'
             AND b.payload->>'exchange_rate' IS NOT NULL AND c.currency = 'usd'""",
        login=Login.TRANSFORMER,
    )
    assert charges > 0
    rows = {
        row["currency"]: row
        for row in run(
            reader, expand(panel_sql(finance_panel("FX slippage by currency"))[0], whole_history(warehouse))
        )[1]
    }
    usd = rows["USD"]
    assert usd["charges"] == charges
    assert abs(usd["reference_gbp"] - reference) < Decimal("1e-9")
    assert usd["settled_gbp"] == settled
    assert abs(usd["slippage_gbp"] - (reference - settled)) < Decimal("1e-9")
    # Stripe's synthetic rate sits 0.2% to 0.5% under the reference rate (synthetic_fees.SPREAD).
    assert Decimal("0.2") < usd["slippage_percent"] < Decimal("0.5")
