"""Alerts: Grafana's alert rules (grafana/provisioning/alerting/) and the run-failure sensor.

Every rule's query runs as the read-only role against a warehouse dbt built, and is evaluated the
way Grafana evaluates a SQL query in an alert: each row a series, its text columns the labels,
its one numeric column the value the threshold compares. The sensor handles failures of a real
Dagster run, recording them in the warehouse and POSTing them to a webhook served from a thread.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from dbt_helpers import build_marts, charge, empty_warehouse
from grafana_helpers import REPO, parse_interval, provisioned_datasource
from stream_helpers import land_objects
from txstream_dagster.db.logins import Login
from txstream_dagster.defs.alerting.resources import AlertWebhookError, AlertWebhookResource
from txstream_dagster.defs.alerting.sensors import RunFailure, record_run_failure, run_failure_alert_sensor
from txstream_dagster.defs.dbt.checks import FX_RATE_GRACE_DAYS, MissingRates, overdue
from txstream_dagster.defs.stream.checks import QUARANTINE_RATE_MAX, quarantine_rate_is_low
from txstream_dagster.dev.processes import free_port
from txstream_dagster.resources import PostgresResource
from txstream_dagster.resources.build import build_resources
from txstream_dagster.settings import load_settings

ALERTING_DIR = REPO / "grafana" / "provisioning" / "alerting"
MONITORING_MODELS = REPO / "dbt_project" / "models" / "monitoring"
EXPRESSIONS = "__expr__"
NUMERIC = (int, float, Decimal)
# Grafana's threshold evaluators (pkg/expr/threshold.go).
EVALUATORS = {
    "gt": lambda value, params: value > params[0],
    "lt": lambda value, params: value < params[0],
    "within_range": lambda value, params: params[0] < value < params[1],
    "outside_range": lambda value, params: value < params[0] or value > params[1],
}
TOPIC = "stripe.events"


# --- the provisioning files ------------------------------------------------------------------------


def alerting_files() -> list[Path]:
    return sorted(ALERTING_DIR.glob("*.yaml"))


def rule_groups() -> list[dict]:
    return [group for path in alerting_files() for group in yaml.safe_load(path.read_text())["groups"]]


RULES = {rule["uid"]: rule for group in rule_groups() for rule in group["rules"]}


def query_of(rule: dict) -> dict:
    [query] = [query for query in rule["data"] if query["datasourceUid"] != EXPRESSIONS]
    return query


def condition_of(rule: dict) -> dict:
    [condition] = [query for query in rule["data"] if query["refId"] == rule["condition"]]
    return condition["model"]


def test_there_is_an_alert_for_lag_quarantine_forex_reconciliation_marts_and_failed_runs():
    assert {rule["title"] for rule in RULES.values()} == {
        "Stream lag",
        "Stream lag not observed",
        "Quarantine rate",
        "Forex rates missing",
        "Stripe objects missing",
        "Marts stale",
        "Dagster run failed",
    }


def test_alert_files_have_the_shape_grafana_provisions():
    assert alerting_files()
    uids = []
    for path in alerting_files():
        document = yaml.safe_load(path.read_text())
        assert document["apiVersion"] == 1, path.name
        for group in document["groups"]:
            assert group["orgId"] == 1 and group["name"] and group["folder"], path.name
            assert parse_interval(group["interval"]) >= timedelta(seconds=10)
            for rule in group["rules"]:
                uids.append(rule["uid"])
                assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", rule["uid"]), rule["uid"]
                assert rule["title"].strip() and rule["annotations"]["summary"].strip()
                assert rule["noDataState"] in {"OK", "NoData", "Alerting", "KeepLast"}
                assert rule["execErrState"] in {"OK", "Error", "Alerting", "KeepLast"}
                assert rule["for"] == "0s" or parse_interval(rule["for"]) > timedelta(0)
                ref_ids = [query["refId"] for query in rule["data"]]
                assert len(ref_ids) == len(set(ref_ids)), rule["uid"]
                assert rule["condition"] in ref_ids, f"{rule['uid']}: condition {rule['condition']} is no query"
                for query in rule["data"]:
                    assert query["model"]["refId"] == query["refId"]
                    if query["datasourceUid"] == EXPRESSIONS:
                        assert query["model"]["expression"] in ref_ids, rule["uid"]
    assert len(uids) == len(set(uids)), f"duplicate rule uids: {sorted(uids)}"


@pytest.mark.parametrize("uid", RULES)
def test_each_rule_queries_the_provisioned_warehouse_and_fires_on_a_threshold(uid):
    rule = RULES[uid]
    warehouse = provisioned_datasource()
    query = query_of(rule)
    assert query["datasourceUid"] == warehouse["uid"]
    assert query["model"]["datasource"] == {"type": warehouse["type"], "uid": warehouse["uid"]}
    assert query["model"]["format"] == "table" and query["model"]["rawQuery"] is True
    condition = condition_of(rule)
    assert condition["type"] == "threshold" and condition["expression"] == query["refId"]
    [evaluator] = [c["evaluator"] for c in condition["conditions"]]
    assert evaluator["type"] in EVALUATORS


def test_no_query_or_label_holds_a_dollar_sign_grafana_would_take_for_an_environment_variable():
    # Grafana's alerting provisioning replaces $NAME (and ${NAME}) everywhere but in annotations:
    # `$labels` in a label or `$__timeFilter` in a query would silently become an empty string.
    for uid, rule in RULES.items():
        interpolated = {key: value for key, value in rule.items() if key != "annotations"}
        assert "$" not in json.dumps(interpolated), f"{uid}: write $$ for a literal dollar sign, or avoid it"


@pytest.mark.parametrize("uid", RULES)
def test_each_rule_reads_monitoring_views_dbt_builds_never_raw_ops_or_staging(uid):
    sql = query_of(RULES[uid])["model"]["rawSql"]
    assert not re.search(r"\b(raw|ops|staging)\.", sql, re.IGNORECASE), sql
    views = set(re.findall(r"\bmonitoring\.(\w+)", sql))
    assert views, f"{uid} reads no monitoring view: its formula would be a second one"
    assert {f"{view}.sql" for view in views} <= {path.name for path in MONITORING_MODELS.glob("*.sql")}


# --- the rules against a warehouse dbt built ------------------------------------------------------

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def warehouse(postgres: PostgresResource) -> PostgresResource:
    """Two charges no rate converts (no forex rates at all): a JPY one past the grace, a USD one of today."""
    empty_warehouse(postgres)
    with postgres.connect(login=Login.OWNER) as conn:
        conn.execute("TRUNCATE ops.dagster_run_failures")
    land_objects(
        postgres,
        [
            charge("ch_jpy_overdue", 5_000, "jpy", NOW - timedelta(days=FX_RATE_GRACE_DAYS + 1)),
            charge("ch_usd_today", 1_250, "usd", NOW),
        ],
    )
    result = build_marts(postgres, full_refresh=True)
    assert result.success, "the dbt build failed; run tests/test_dbt_marts.py to see why"
    return postgres


@pytest.fixture
def reader(warehouse: PostgresResource) -> Iterator[psycopg.Connection]:
    with warehouse.connect(login=Login.READER, autocommit=True) as conn:
        conn.row_factory = dict_row
        yield conn


def as_owner(postgres: PostgresResource, sql: str, params: Any = None) -> None:
    with postgres.connect(login=Login.OWNER) as conn:
        conn.execute(sql, params)


def evaluate(reader: psycopg.Connection, uid: str) -> dict[tuple, tuple[float, bool]]:
    """Grafana's evaluation of the rule: {labels: (value, firing)} for each row of its query."""
    rule = RULES[uid]
    cursor = reader.execute(query_of(rule)["model"]["rawSql"])
    columns = [column.name for column in cursor.description]
    rows = cursor.fetchall()
    [evaluator] = [c["evaluator"] for c in condition_of(rule)["conditions"]]
    series = {}
    for row in rows:
        values = [c for c in columns if isinstance(row[c], NUMERIC)]
        assert len(values) == 1, f"{uid}: Grafana wants one numeric column per row, got {values} of {columns}"
        labels = [c for c in columns if c not in values]
        # Any other type (a timestamp) would turn the result into a time series; null would be no data.
        assert all(isinstance(row[c], str) for c in labels), f"{uid}: label columns must be text: {row}"
        value = float(row[values[0]])
        series[tuple((c, row[c]) for c in labels)] = (value, EVALUATORS[evaluator["type"]](value, evaluator["params"]))
    return series


def firing(reader: psycopg.Connection, uid: str) -> set[tuple]:
    return {labels for labels, (_, fires) in evaluate(reader, uid).items() if fires}


def observe_lag(postgres: PostgresResource, lag: dict[int, int], age: timedelta = timedelta(0)) -> None:
    """What stream_lag_sensor records on a tick `age` ago: end offsets `lag` messages past the committed ones."""
    as_owner(postgres, "TRUNCATE ops.stream_lag")
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO ops.stream_lag (observed_at, kafka_topic, kafka_partition, end_offset, committed_offset)
               VALUES (now() - %s, %s, %s, %s, 1000)""",
            [(age, TOPIC, partition, 1000 + messages) for partition, messages in lag.items()],
        )


@pytest.mark.slow
def test_stream_lag_fires_when_over_ten_thousand_messages_wait(warehouse, reader):
    observe_lag(warehouse, {0: 12_000, 1: 500})
    assert firing(reader, "txstream-stream-lag") == {(("kafka_topic", TOPIC),)}
    assert evaluate(reader, "txstream-stream-lag")[(("kafka_topic", TOPIC),)][0] == 12_500

    observe_lag(warehouse, {0: 40, 1: 0})
    assert firing(reader, "txstream-stream-lag") == set()


@pytest.mark.slow
def test_lag_not_observed_fires_when_the_sensor_has_been_silent_for_five_minutes(warehouse, reader):
    observe_lag(warehouse, {0: 0, 1: 0}, age=timedelta(minutes=6))
    assert firing(reader, "txstream-stream-lag-unobserved") == {(("kafka_topic", TOPIC),)}

    observe_lag(warehouse, {0: 0, 1: 0}, age=timedelta(seconds=15))
    assert firing(reader, "txstream-stream-lag-unobserved") == set()
    # No observation at all is the same fault: Grafana's no-data state for this rule is Alerting.
    as_owner(warehouse, "TRUNCATE ops.stream_lag")
    assert evaluate(reader, "txstream-stream-lag-unobserved") == {}
    assert RULES["txstream-stream-lag-unobserved"]["noDataState"] == "Alerting"


def record_batches(postgres: PostgresResource, consumed: int, quarantined: int, age: timedelta) -> None:
    """One applied micro-batch per call, as the sink records it, committed `age` ago."""
    key = f"test-{consumed}-{quarantined}-{age.total_seconds()}"
    as_owner(
        postgres,
        """INSERT INTO ops.stream_batches (range_key, kafka_topic, offset_ranges, consumed, inserted, updated,
               duplicates, quarantined, started_at, committed_at)
           VALUES (%s, %s, '[]', %s, %s, 0, 0, %s, now() - %s, now() - %s)""",
        [key, TOPIC, consumed, consumed - quarantined, quarantined, age, age],
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("quarantined", "fires"),
    [(25, True), (9, False)],
    ids=["2.5% fires", "0.9% does not"],
)
def test_quarantine_rate_fires_exactly_when_the_check_fails(warehouse, reader, quarantined, fires):
    as_owner(warehouse, "TRUNCATE ops.stream_batches")
    record_batches(warehouse, 1_000, quarantined, timedelta(hours=1))
    record_batches(warehouse, 1_000, 0, timedelta(hours=2))
    record_batches(warehouse, 1_000, 1_000, timedelta(days=3))  # outside both windows
    assert firing(reader, "txstream-quarantine-rate") == ({(("kafka_topic", TOPIC),)} if fires else set())
    check = quarantine_rate_is_low(postgres=warehouse)
    assert check.passed is not fires
    assert RULES["txstream-quarantine-rate"]["data"][1]["model"]["conditions"][0]["evaluator"]["params"] == [
        QUARANTINE_RATE_MAX
    ]


@pytest.mark.slow
def test_missing_forex_rates_fire_for_the_currencies_the_check_finds_overdue(warehouse, reader):
    assert firing(reader, "txstream-fx-rate-missing") == {(("currency_code", "jpy"),)}
    missing = [
        MissingRates(row["currency_code"], row["charge_count"], row["oldest_charge_date"])
        for row in reader.execute("SELECT * FROM monitoring.fx_rate_missing_by_currency").fetchall()
    ]
    assert {m.currency_code for m in missing} == {"jpy", "usd"}  # today's USD charge waits, within the grace
    assert {m.currency_code for m in overdue(missing, datetime.now(UTC).date())} == {"jpy"}


@pytest.mark.slow
def test_marts_are_stale_only_while_landed_data_waits_for_a_build_over_an_hour_old(warehouse, reader):
    # Just built: nothing waits.
    assert evaluate(reader, "txstream-marts-stale") == {(): (0.0, False)}
    shift_builds = "UPDATE ops.dbt_node_runs SET completed_at = completed_at + %s"
    shift_landing = "UPDATE raw.transactions SET ingested_at = ingested_at + %s"
    try:
        as_owner(warehouse, shift_builds, [timedelta(hours=-2)])  # the data landed after the last build
        [(value, fires)] = evaluate(reader, "txstream-marts-stale").values()
        assert fires and 7_100 < value < 7_400
        as_owner(warehouse, shift_landing, [timedelta(hours=-3)])  # a quiet pipeline: nothing new since
        assert firing(reader, "txstream-marts-stale") == set()
    finally:
        as_owner(warehouse, shift_builds, [timedelta(hours=2)])
        as_owner(warehouse, shift_landing, [timedelta(hours=3)])


@pytest.mark.slow
def test_failed_runs_fire_for_an_hour_per_job(warehouse, reader):
    as_owner(warehouse, "TRUNCATE ops.dagster_run_failures")
    for run_id, age in (("r-now", timedelta(0)), ("r-earlier", timedelta(minutes=50)), ("r-old", timedelta(hours=2))):
        failed_at = NOW - age
        record_run_failure(warehouse, RunFailure(run_id, "stream_catch_up", failed_at, "failed", [], None, None))
    record_run_failure(
        warehouse, RunFailure("r-forex", "__ASSET_JOB", NOW - timedelta(hours=3), "failed", [], None, "2024-01-02")
    )
    assert evaluate(reader, "txstream-dagster-run-failed") == {(("job_name", "stream_catch_up"),): (2.0, True)}


@pytest.mark.slow
def test_stripe_objects_missing_fires_per_object_type_for_the_last_35_days(warehouse, reader):
    as_owner(warehouse, "TRUNCATE ops.reconciliation_results")
    today = NOW.date()
    for day, object_type, missing in (
        (today - timedelta(days=1), "charge", ["ch_lost_1", "ch_lost_2"]),
        (today - timedelta(days=1), "refund", []),
        (today - timedelta(days=2), "charge", ["ch_lost_3"]),
        (today - timedelta(days=40), "dispute", ["dp_lost_long_ago"]),  # outside the window
    ):
        as_owner(
            warehouse,
            """INSERT INTO ops.reconciliation_results (day, object_type, stripe_count, landed_count, stripe_amounts,
                   landed_amounts, missing_ids, quarantined_ids, extra_ids, mismatched_ids)
               VALUES (%s, %s, 10, 10, '{}', '{}', %s, '{}', '{}', '{}')""",
            (day, object_type, missing),
        )
    assert evaluate(reader, "txstream-stripe-objects-missing") == {(("object_type", "charge"),): (3.0, True)}
    as_owner(warehouse, "TRUNCATE ops.reconciliation_results")
    assert evaluate(reader, "txstream-stripe-objects-missing") == {}


# --- the run-failure sensor -----------------------------------------------------------------------


@dataclass
class WebhookReceiver:
    """A webhook endpoint in a thread: it keeps what was POSTed and answers `status`."""

    status: int = 204
    requests: list[dict] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(
                    {"path": self.path, "content_type": self.headers["Content-Type"], "body": json.loads(body)}
                )
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        return Handler


@pytest.fixture
def webhook() -> Iterator[tuple[WebhookReceiver, str]]:
    receiver = WebhookReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver, f"http://127.0.0.1:{server.server_port}/hooks/T000/B000/secret-token"
    server.shutdown()
    server.server_close()


@dg.op
def fetch_rates() -> None:
    raise ValueError("the forex API answered 503")


@dg.op
def log_done() -> None:
    pass


@dg.job
def forex_refresh() -> None:
    fetch_rates()
    log_done()


@pytest.fixture
def failed_run() -> tuple[dg.DagsterInstance, dg.ExecuteInProcessResult]:
    """A run of its own (its own run id) for each test, failed in a real Dagster instance."""
    instance = dg.DagsterInstance.ephemeral()
    result = forex_refresh.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return instance, result


def evaluate_sensor(failed_run, postgres: PostgresResource, webhook_url: str | None) -> None:
    instance, result = failed_run
    context = dg.build_run_status_sensor_context(
        sensor_name=run_failure_alert_sensor.name,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"postgres": postgres, "alert_webhook": AlertWebhookResource(url=webhook_url)},
    )
    run_failure_alert_sensor(context)


def recorded(postgres: PostgresResource, run_id: str) -> list[dict]:
    with postgres.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM ops.dagster_run_failures WHERE run_id = %s", [run_id]).fetchall()


@pytest.mark.slow
def test_a_failed_run_is_recorded_for_grafana_and_posted_to_the_webhook(warehouse, reader, failed_run, webhook):
    receiver, url = webhook
    _, result = failed_run
    evaluate_sensor(failed_run, warehouse, url)

    [row] = recorded(warehouse, result.run_id)
    assert row["job_name"] == "forex_refresh"
    assert row["failed_steps"] == ["fetch_rates"]
    assert row["error"] == "ValueError: the forex API answered 503"  # the cause, not Dagster's wrapper
    assert "fetch_rates" in row["message"]
    assert abs(row["failed_at"] - datetime.now(UTC)) < timedelta(minutes=1)

    [request] = receiver.requests
    assert request["path"] == "/hooks/T000/B000/secret-token"
    assert request["content_type"] == "application/json"
    assert request["body"] == {
        "text": (
            f"txstream: Dagster run {result.run_id} of forex_refresh failed: {row['message']}\n"
            "ValueError: the forex API answered 503"
        ),
        "source": "txstream",
        "alert": "dagster_run_failed",
        "run_id": result.run_id,
        "job_name": "forex_refresh",
        "failed_at": row["failed_at"].isoformat(),
        "message": row["message"],
        "failed_steps": ["fetch_rates"],
        "error": "ValueError: the forex API answered 503",
        "partition_key": None,
        "recorded": True,
    }

    # Grafana sees it through the monitoring view, and the alert fires for the job.
    shown = reader.execute("SELECT job_name FROM monitoring.dagster_run_failures WHERE run_id = %s", [result.run_id])
    assert shown.fetchall() == [{"job_name": "forex_refresh"}]
    assert (("job_name", "forex_refresh"),) in firing(reader, "txstream-dagster-run-failed")

    # The same failure evaluated again (a retried tick) is still one row.
    evaluate_sensor(failed_run, warehouse, url)
    assert len(recorded(warehouse, result.run_id)) == 1


@pytest.mark.slow
def test_a_webhook_that_answers_500_is_logged_and_the_failure_still_recorded(warehouse, failed_run, webhook, capfd):
    receiver, url = webhook
    receiver.status = 500
    _, result = failed_run
    evaluate_sensor(failed_run, warehouse, url)  # does not raise
    assert len(receiver.requests) == 1
    assert len(recorded(warehouse, result.run_id)) == 1
    logged = capfd.readouterr().err
    assert "the webhook was not told" in logged and "HTTP 500" in logged and "secret-token" not in logged


@pytest.mark.slow
def test_an_unreachable_webhook_does_not_stop_the_failure_being_recorded(warehouse, failed_run):
    _, result = failed_run
    evaluate_sensor(failed_run, warehouse, f"http://127.0.0.1:{free_port()}/hooks/secret-token")
    assert len(recorded(warehouse, result.run_id)) == 1


@pytest.mark.slow
def test_without_a_webhook_the_failure_is_recorded_all_the_same(warehouse, failed_run):
    _, result = failed_run
    evaluate_sensor(failed_run, warehouse, None)
    assert len(recorded(warehouse, result.run_id)) == 1


@pytest.mark.slow
def test_when_the_warehouse_refuses_the_row_the_webhook_still_hears_and_the_tick_fails(warehouse, failed_run, webhook):
    # Dagster moves a run-status sensor's cursor past the run even when the tick fails: the webhook is the
    # only place this failure can still reach.
    receiver, url = webhook
    read_only = PostgresResource(url=warehouse.url, embedded=warehouse.embedded, login=Login.READER)  # no rights on ops
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        evaluate_sensor(failed_run, read_only, url)
    [request] = receiver.requests
    assert request["body"]["recorded"] is False
    assert "Not recorded in ops.dagster_run_failures" in request["body"]["text"]


# --- the webhook resource and its setting ---------------------------------------------------------


def test_webhook_errors_say_what_failed_and_what_to_do_without_the_token(webhook):
    receiver, url = webhook
    receiver.status = 403
    with pytest.raises(AlertWebhookError) as refused:
        AlertWebhookResource(url=url).post({"text": "hello"})
    assert "HTTP 403" in str(refused.value) and "TXSTREAM_ALERT_WEBHOOK_URL" in str(refused.value)
    unreachable = f"http://127.0.0.1:{free_port()}/hooks/secret-token?key=another-secret"
    with pytest.raises(AlertWebhookError) as unanswered:
        AlertWebhookResource(url=unreachable, timeout_seconds=2).post({"text": "hello"})
    message = str(unanswered.value)
    assert "Cannot reach the alert webhook at http://127.0.0.1" in message and "TXSTREAM_ALERT_WEBHOOK_URL" in message
    assert "secret-token" not in message and "another-secret" not in message
    assert "secret-token" not in str(refused.value)


def test_the_webhook_url_reaches_dagster_as_an_env_var_and_never_shows(monkeypatch, tmp_path):
    monkeypatch.setenv("TXSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TXSTREAM_POSTGRES_URL", "postgresql://db.internal:5432/payments")
    monkeypatch.setenv("TXSTREAM_ALERT_WEBHOOK_URL", "https://hooks.example.com/services/T0/B0/secret-token")
    settings = load_settings()
    assert "secret-token" not in repr(settings)
    assert build_resources(settings)["alert_webhook"].url == "TXSTREAM_ALERT_WEBHOOK_URL"

    monkeypatch.setenv("TXSTREAM_ALERT_WEBHOOK_URL", "")
    assert load_settings().alert_webhook_url is None  # unset: no webhook, failures still recorded


def test_a_webhook_url_that_is_not_http_is_refused_naming_the_variable_not_the_token(monkeypatch):
    monkeypatch.setenv("TXSTREAM_ALERT_WEBHOOK_URL", "hooks.example.com/services/secret-token")
    with pytest.raises(ValueError, match="TXSTREAM_ALERT_WEBHOOK_URL") as refused:
        load_settings()
    assert "secret-token" not in str(refused.value)
