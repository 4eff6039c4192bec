"""The `forex_rates` asset, its checks and schedule, against a real PostgreSQL and a real local
HTTP server: partitions land, replays change nothing, weekends carry Friday, failures write
nothing and never make a stored partition worse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest

from forex_helpers import RatesApiServer, Reply, currency_api_payload, frankfurter_payload, rates_api_server
from txstream_dagster.defs.forex.assets import FOREX_PARTITIONS_START, forex_rates
from txstream_dagster.defs.forex.checks import FOREX_CHECKS
from txstream_dagster.defs.forex.definitions import defs as forex_defs
from txstream_dagster.defs.forex.resources import ForexApiResource
from txstream_dagster.defs.forex.schedules import forex_rates_daily
from txstream_dagster.defs.forex.sources import BundledEcbSource, ForexSourceError, load_ecb_history
from txstream_dagster.resources import PostgresResource
from txstream_dagster.resources.build import build_resources
from txstream_dagster.settings import load_settings

THURSDAY, FRIDAY, SATURDAY, SUNDAY, MONDAY = (date(2024, 1, d) for d in (4, 5, 6, 7, 8))
WEDNESDAY = date(2024, 3, 6)
ECB = ForexApiResource(source="ecb_bundled")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture
def api() -> RatesApiServer:
    with rates_api_server() as server:
        yield server


def impatient(**fields) -> ForexApiResource:
    return ForexApiResource(connect_timeout_s=1, read_timeout_s=2, http_retries=0, **fields)


def materialize(postgres: PostgresResource, forex: ForexApiResource, *, checks: bool = False, **kwargs):
    return dg.materialize(
        [forex_rates, *(FOREX_CHECKS if checks else [])],
        resources={"forex": forex, "postgres": postgres},
        **kwargs,
    )


def run_asset(postgres: PostgresResource, forex: ForexApiResource, day: date) -> dg.MaterializeResult:
    """The asset body for one partition, called directly: no retry policy in the way."""
    resources = {"forex": forex, "postgres": postgres}
    with dg.build_asset_context(partition_key=day.isoformat(), resources=resources) as context:
        return forex_rates(context)


def stored(postgres: PostgresResource, day: date) -> dict[str, tuple]:
    rows = postgres.fetch_all(
        "SELECT quote, rate, effective_date, source, fetched_at FROM raw.forex_rates "
        "WHERE rate_date = %s AND base = 'gbp'",
        (day,),
    )
    return {quote: tuple(rest) for quote, *rest in rows}


def insert_charges(postgres: PostgresResource, charges: list[tuple[str, date]]) -> None:
    created = [datetime(day.year, day.month, day.day, 12, tzinfo=UTC) for _, day in charges]
    postgres.copy_rows(
        "raw.transactions",
        [
            "object_id",
            "object_type",
            "amount",
            "currency",
            "created_at",
            "livemode",
            "source",
            "event_time",
            "payload",
            "kafka_topic",
            "kafka_partition",
            "kafka_offset",
        ],
        [
            (
                f"ch_{n}",
                "charge",
                1000,
                currency,
                at,
                False,
                "synthetic",
                at,
                json.dumps({"id": f"ch_{n}"}),
                "stripe.events",
                0,
                n,
            )
            for n, ((currency, _), at) in enumerate(zip(charges, created, strict=True))
        ],
    )


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


# --- partitions land -------------------------------------------------------------------------


def test_a_partition_stores_1_gbp_in_every_ecb_currency(clean_warehouse):
    result = materialize(clean_warehouse, ECB, partition_key=FRIDAY.isoformat())

    rows = stored(clean_warehouse, FRIDAY)
    assert len(rows) == 31 and {"usd", "eur", "jpy", "gbp"} <= rows.keys() and "kwd" not in rows
    assert {(effective, source) for _, effective, source, _ in rows.values()} == {(FRIDAY, "ecb_bundled")}
    assert rows["gbp"][0] == 1
    [materialization] = result.asset_materializations_for_node("forex_rates")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["source"] == "ecb_bundled (1 days)"
    assert metadata["effective_date"] == FRIDAY.isoformat()
    assert (metadata["currencies"], metadata["rows_written"]) == (31, 31)
    assert "usd" in metadata["currencies_published"]


def test_a_replayed_partition_changes_nothing(clean_warehouse):
    materialize(clean_warehouse, ECB, partition_key=FRIDAY.isoformat())
    before = stored(clean_warehouse, FRIDAY)

    result = materialize(clean_warehouse, ECB, partition_key=FRIDAY.isoformat())

    assert stored(clean_warehouse, FRIDAY) == before  # fetched_at included
    [materialization] = result.asset_materializations_for_node("forex_rates")
    assert (materialization.metadata["rows_written"].value, materialization.metadata["rows_unchanged"].value) == (0, 31)


def test_weekend_partitions_carry_fridays_rates_with_fridays_effective_date(clean_warehouse):
    materialize(clean_warehouse, ECB, tags={RANGE_START: "2024-01-05", RANGE_END: "2024-01-08"})

    friday = {quote: rate for quote, (rate, *_) in stored(clean_warehouse, FRIDAY).items()}
    for weekend_day in (SATURDAY, SUNDAY):
        rows = stored(clean_warehouse, weekend_day)
        assert {quote: rate for quote, (rate, *_) in rows.items()} == friday
        assert {effective for _, effective, _, _ in rows.values()} == {FRIDAY}
    assert {effective for _, effective, _, _ in stored(clean_warehouse, MONDAY).values()} == {MONDAY}


def test_a_range_backfill_fills_every_date_across_easter_in_one_run(clean_warehouse):
    result = materialize(clean_warehouse, ECB, tags={RANGE_START: "2024-03-27", RANGE_END: "2024-04-02"})

    effective = dict(
        clean_warehouse.fetch_all(
            "SELECT rate_date, min(effective_date) FROM raw.forex_rates GROUP BY rate_date ORDER BY rate_date"
        )
    )
    thursday = date(2024, 3, 28)
    assert effective == {
        date(2024, 3, 27): date(2024, 3, 27),
        thursday: thursday,
        date(2024, 3, 29): thursday,  # Good Friday
        date(2024, 3, 30): thursday,
        date(2024, 3, 31): thursday,
        date(2024, 4, 1): thursday,  # Easter Monday
        date(2024, 4, 2): date(2024, 4, 2),
    }
    assert len(result.asset_materializations_for_node("forex_rates")) == 7


def test_currency_api_partition_has_kwd_and_bhd_and_names_its_source(clean_warehouse, api):
    api.serve(api.currency_api_path(WEDNESDAY), Reply(body=currency_api_payload(WEDNESDAY)))

    run_asset(clean_warehouse, impatient(source="currency_api", currency_api_url=api.currency_api_url), WEDNESDAY)

    rows = stored(clean_warehouse, WEDNESDAY)
    assert rows["kwd"][0] == Decimal("0.3905116") and rows["bhd"][0] == Decimal("0.47918541")
    assert {source for _, _, source, _ in rows.values()} == {"currency_api"}
    assert "btc" not in rows and "xau" not in rows


# --- never worse ----------------------------------------------------------------------------


def test_a_lower_ranked_source_leaves_a_better_partition_as_it_was(clean_warehouse, api):
    api.serve(api.currency_api_path(WEDNESDAY), Reply(body=currency_api_payload(WEDNESDAY)))
    run_asset(clean_warehouse, impatient(source="currency_api", currency_api_url=api.currency_api_url), WEDNESDAY)
    before = stored(clean_warehouse, WEDNESDAY)

    result = run_asset(clean_warehouse, ECB, WEDNESDAY)

    assert stored(clean_warehouse, WEDNESDAY) == before
    assert result.metadata["rows_kept_from_better_sources"] == 31


def test_a_better_source_upgrades_a_fallback_partition_and_adds_currencies(clean_warehouse, api):
    run_asset(clean_warehouse, ECB, WEDNESDAY)
    api.serve(api.currency_api_path(WEDNESDAY), Reply(body=currency_api_payload(WEDNESDAY)))

    run_asset(clean_warehouse, impatient(source="currency_api", currency_api_url=api.currency_api_url), WEDNESDAY)

    rows = stored(clean_warehouse, WEDNESDAY)
    assert {source for _, _, source, _ in rows.values()} == {"currency_api"}
    assert "kwd" in rows and rows["usd"][0] == Decimal("1.27114")


def test_auto_falls_back_per_date_and_records_the_source_of_each_row(clean_warehouse, api):
    api.serve(api.currency_api_path(WEDNESDAY), Reply(body=currency_api_payload(WEDNESDAY)))
    forex = impatient(currency_api_url=api.currency_api_url)  # auto; 2024-03-05 is a 404 there

    materialize(clean_warehouse, forex, tags={RANGE_START: "2024-03-05", RANGE_END: "2024-03-06"})

    sources = clean_warehouse.fetch_all("SELECT DISTINCT rate_date, source FROM raw.forex_rates ORDER BY 1")
    assert sources == [(date(2024, 3, 5), "ecb_bundled"), (WEDNESDAY, "currency_api")]


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (Reply(503), "HTTP 503"),
        (Reply(body=b'{"amount": 1.0, "base": "GBP", "date": "2024-01-05", "rates": {"USD": 1.2'), "malformed JSON"),
        (Reply(body={"amount": 1.0, "base": "GBP", "date": "2024-01-05", "rates": {"USD": 1.27}}), "partial"),
        (Reply(body=frankfurter_payload(FRIDAY, {"JPY": -183.9})), "rate for jpy is -183.9"),
    ],
    ids=["http-error", "malformed", "partial", "negative"],
)
def test_a_failing_source_leaves_the_previous_good_partition_untouched(clean_warehouse, api, reply, problem):
    forex = impatient(source="frankfurter", frankfurter_url=api.frankfurter_url)
    api.serve(api.frankfurter_path(FRIDAY), Reply(body=frankfurter_payload(FRIDAY)))
    run_asset(clean_warehouse, forex, FRIDAY)
    good = stored(clean_warehouse, FRIDAY)
    api.serve(api.frankfurter_path(FRIDAY), reply)

    with pytest.raises(dg.Failure, match=f"2024-01-05: frankfurter: .*{problem}") as failure:
        run_asset(clean_warehouse, forex, FRIDAY)

    assert failure.value.allow_retries
    assert stored(clean_warehouse, FRIDAY) == good


def test_a_failing_first_fetch_writes_no_rates_at_all(clean_warehouse, api):
    api.serve(api.frankfurter_path(FRIDAY), Reply(body=frankfurter_payload(FRIDAY, {"USD": 0})))
    with pytest.raises(dg.Failure, match="rate for usd is 0"):
        run_asset(clean_warehouse, impatient(source="frankfurter", frankfurter_url=api.frankfurter_url), FRIDAY)
    assert clean_warehouse.fetch_one("SELECT count(*) FROM raw.forex_rates") == (0,)


def test_a_range_with_one_bad_date_writes_the_others_and_fails_naming_that_date(clean_warehouse, api):
    for day in (THURSDAY, FRIDAY):
        api.serve(api.frankfurter_path(day), Reply(body=frankfurter_payload(day)))
    api.serve(api.frankfurter_path(MONDAY), Reply(body=frankfurter_payload(FRIDAY)))  # Monday not published
    forex = impatient(source="frankfurter", frankfurter_url=api.frankfurter_url)
    api.serve(api.frankfurter_path(SATURDAY), Reply(body=frankfurter_payload(FRIDAY)))
    api.serve(api.frankfurter_path(SUNDAY), Reply(body=frankfurter_payload(FRIDAY)))

    with (
        dg.build_asset_context(
            partition_key_range=dg.PartitionKeyRange("2024-01-04", "2024-01-08"),
            resources={"forex": forex, "postgres": clean_warehouse},
        ) as context,
        pytest.raises(dg.Failure) as failure,
    ):
        forex_rates(context)

    assert "No usable forex rates for 1 date(s)" in failure.value.description
    assert "2024-01-08: frankfurter: " in failure.value.description
    assert not failure.value.allow_retries  # Monday is long past: retrying cannot help
    written = clean_warehouse.fetch_all("SELECT DISTINCT rate_date FROM raw.forex_rates ORDER BY 1")
    assert [day for (day,) in written] == [THURSDAY, FRIDAY, SATURDAY, SUNDAY]


# --- checks ---------------------------------------------------------------------------------


def test_checks_warn_about_charged_currencies_no_source_publishes(clean_warehouse):
    insert_charges(clean_warehouse, [("gbp", FRIDAY), ("usd", FRIDAY), ("kwd", FRIDAY), ("kwd", FRIDAY)])

    result = materialize(clean_warehouse, ECB, checks=True, partition_key=FRIDAY.isoformat())

    checks = check_results(result)
    currencies = checks["charge_currencies_have_forex_rates"]
    assert currencies.metadata["checked_dates"].value == "2024-01-05 … 2024-01-05"  # the run's partition
    assert not currencies.passed and currencies.severity == dg.AssetCheckSeverity.WARN
    assert currencies.metadata["currencies_without_rates"].value == ["kwd"]
    assert currencies.metadata["charges_without_rates"].value == 2
    assert "fx_rate_missing" in currencies.description
    assert checks["charge_dates_have_forex_rates"].passed
    assert checks["forex_rates_are_positive"].passed
    assert checks["forex_day_over_day_moves_are_plausible"].passed


def test_checks_fail_when_a_date_with_charges_has_no_rates(clean_warehouse):
    insert_charges(clean_warehouse, [("usd", FRIDAY), ("usd", MONDAY)])
    materialize(clean_warehouse, ECB, partition_key=FRIDAY.isoformat())

    # Run on their own, the checks audit the whole table, not just one partition.
    result = materialize(clean_warehouse, ECB, checks=True, selection=dg.AssetSelection.checks(*FOREX_CHECKS))

    dates = check_results(result)["charge_dates_have_forex_rates"]
    assert dates.metadata["checked_dates"].value == "all dates"
    assert not dates.passed and dates.severity == dg.AssetCheckSeverity.ERROR
    assert dates.metadata["first_dates_without_rates"].value == [MONDAY.isoformat()]
    assert "backfill forex_rates from 2024-01-08 to 2024-01-08" in dates.description


def test_a_large_day_over_day_move_is_flagged(clean_warehouse, api):
    api.serve(api.frankfurter_path(THURSDAY), Reply(body=frankfurter_payload(THURSDAY)))
    devalued = frankfurter_payload(FRIDAY)["rates"]["ZAR"] * 1.5
    api.serve(api.frankfurter_path(FRIDAY), Reply(body=frankfurter_payload(FRIDAY, {"ZAR": devalued})))
    forex = impatient(source="frankfurter", frankfurter_url=api.frankfurter_url)

    result = materialize(clean_warehouse, forex, checks=True, tags={RANGE_START: "2024-01-04", RANGE_END: "2024-01-05"})

    moves = check_results(result)["forex_day_over_day_moves_are_plausible"]
    assert not moves.passed and moves.severity == dg.AssetCheckSeverity.WARN
    assert moves.metadata["large_moves"].value == 1
    assert moves.metadata["first_large_moves"].value[0].startswith("2024-01-05 zar: ")


def test_a_nan_rate_fails_the_positive_check(clean_warehouse):
    materialize(clean_warehouse, ECB, partition_key=FRIDAY.isoformat())
    with clean_warehouse.connect() as conn:
        # numeric's NaN passes the table's CHECK (rate > 0): only the asset check catches it.
        conn.execute("UPDATE raw.forex_rates SET rate = 'NaN' WHERE quote = 'usd'")

    result = materialize(clean_warehouse, ECB, checks=True, selection=dg.AssetSelection.checks(*FOREX_CHECKS))

    positive = check_results(result)["forex_rates_are_positive"]
    assert not positive.passed
    assert positive.metadata["first_implausible"].value == ["2024-01-05 usd=NaN (ecb_bundled)"]


def test_rates_carried_past_the_bundled_file_are_flagged_stale(clean_warehouse):
    history_end = load_ecb_history().dates[-1]
    later = history_end + timedelta(days=12)
    allowed = ForexApiResource(source="ecb_bundled", bundled_max_days_past_end=30)

    result = materialize(clean_warehouse, allowed, checks=True, partition_key=later.isoformat())

    assert clean_warehouse.fetch_one(
        "SELECT DISTINCT effective_date FROM raw.forex_rates WHERE rate_date = %s", [later]
    ) == (history_end,)
    current = check_results(result)["forex_rates_are_current"]
    assert not current.passed and current.severity == dg.AssetCheckSeverity.WARN
    assert current.metadata["oldest_rates_days"].value == 12


# --- definitions and schedule ---------------------------------------------------------------------


def code_location() -> dg.Definitions:
    """The forex stage as the code location loads it: with the resources built from the settings."""
    return dg.Definitions.merge(forex_defs, dg.Definitions(resources=build_resources(load_settings())))


def test_forex_definitions_snapshot():
    # A change to partitions, retries, checks or schedule shows up here in review.
    location = code_location()
    assets_def = location.resolve_assets_def("forex_rates")
    assert FOREX_PARTITIONS_START == "1999-01-04"
    assert assets_def.partitions_def.start == datetime(1999, 1, 4, tzinfo=UTC)
    assert assets_def.backfill_policy == dg.BackfillPolicy.single_run()
    assert assets_def.op.retry_policy.max_retries == 3
    assert sorted(key.name for key in location.resolve_asset_graph().asset_check_keys) == [
        "charge_currencies_have_forex_rates",
        "charge_dates_have_forex_rates",
        "forex_day_over_day_moves_are_plausible",
        "forex_rates_are_current",
        "forex_rates_are_positive",
    ]
    schedule = location.resolve_schedule_def("forex_rates_daily")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 17 * * *", "Europe/Berlin")


def test_partitions_start_on_the_first_day_the_offline_source_can_serve():
    # "Backfill any date since 1999": the first partition is the ECB's first fixing, none before it.
    first = date.fromisoformat(FOREX_PARTITIONS_START)
    assert first == load_ecb_history().dates[0] == date(1999, 1, 4)
    assert BundledEcbSource().published_rates(first).effective_date == first
    with pytest.raises(ForexSourceError, match="starts on 1999-01-04"):
        BundledEcbSource().published_rates(first - timedelta(days=1))


def test_the_evening_schedule_requests_today_and_yesterday():
    evening = datetime(2024, 3, 6, 17, tzinfo=UTC)
    requests = forex_rates_daily(dg.build_schedule_context(scheduled_execution_time=evening))
    assert [request.partition_key for request in requests] == ["2024-03-05", "2024-03-06"]
    assert len({request.run_key for request in requests}) == 2


@pytest.mark.slow
def test_the_cli_backfills_a_partition_range(clean_warehouse, tmp_path):
    # The README's command, with a code location of the forex stage and the resources.
    (tmp_path / "location.py").write_text(
        textwrap.dedent(
            """
            import dagster as dg
            from txstream_dagster.defs.forex import definitions as forex
            from txstream_dagster.resources.build import build_resources
            from txstream_dagster.settings import load_settings

            defs = dg.Definitions.merge(forex.defs, dg.Definitions(resources=build_resources(load_settings())))
            """
        )
    )
    (tmp_path / "home").mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "TXSTREAM_FOREX_SOURCE": "ecb_bundled"}
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "--select",
            "forex_rates",
            "--partition-range",
            "2024-01-05...2024-01-08",
            "-f",
            str(tmp_path / "location.py"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]

    dates = clean_warehouse.fetch_all("SELECT DISTINCT rate_date, effective_date FROM raw.forex_rates ORDER BY 1")
    assert dates == [(FRIDAY, FRIDAY), (SATURDAY, FRIDAY), (SUNDAY, FRIDAY), (MONDAY, MONDAY)]


def test_todays_partition_exists_and_tomorrows_does_not():
    today = datetime.now(UTC).date()
    keys = code_location().resolve_assets_def("forex_rates").partitions_def.get_partition_keys()
    assert keys[-1] == today.isoformat() and (today + timedelta(days=1)).isoformat() not in keys
