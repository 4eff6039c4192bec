"""The daily retention against real PostgreSQL: what is old goes, what reconciliation compares stays, and the
stream's accounting holds afterwards.

Rows are landed the way the pipeline lands them (the stream's sink, dbt's run log as the
transformer), then aged by moving their timestamps back.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from resource_helpers import spark_resource
from stream_helpers import Message, land_messages, message_for
from stripe_helpers import stripe_fixture
from txstream_dagster.db.logins import Login
from txstream_dagster.defs.retention.cleanup import apply_retention
from txstream_dagster.defs.retention.definitions import ops_retention_job
from txstream_dagster.defs.retention.resources import RetentionPolicy
from txstream_dagster.defs.stream.checks import every_message_is_accounted_for
from txstream_dagster.defs.stream.quarantine import replay_quarantine
from txstream_dagster.resources import PostgresResource
from txstream_dagster.settings import load_settings

POLICY = RetentionPolicy(reconcile_days=35, ops_retention_days=90, quarantine_retention_days=180)


def charges(offsets: range, partition: int = 0) -> list[Message]:
    return [
        message_for({**stripe_fixture("charge"), "id": f"ch_keep_{partition}_{o}"}, partition=partition, offset=o)
        for o in offsets
    ]


def as_owner(postgres: PostgresResource, statement: str, params=None) -> None:
    with postgres.connect(login=Login.OWNER) as conn:
        conn.execute(statement, params)


def check(postgres: PostgresResource):
    return every_message_is_accounted_for(postgres=postgres, spark=spark_resource())


def quarantine_at(postgres: PostgresResource, offset: int, days_ago: int, replayed: bool = False) -> None:
    """Quarantine a message (the stream's sink) at `offset`, `days_ago` days ago, landed by a replay or not."""
    land_messages(postgres, [Message(value=b"not json", key=b"k", offset=offset)])
    as_owner(
        postgres,
        "UPDATE raw.quarantined_events SET quarantined_at = now() - make_interval(days => %s), "
        "replayed_at = CASE WHEN %s THEN now() - make_interval(days => %s) END WHERE kafka_offset = %s",
        [days_ago, replayed, days_ago, offset],
    )


def test_quarantined_messages_go_after_their_retention_and_never_inside_the_reconciliation_window(
    clean_warehouse: PostgresResource,
):
    quarantine_at(clean_warehouse, 0, days_ago=200)  # never landed, past 180 days: goes
    quarantine_at(clean_warehouse, 1, days_ago=100)  # never landed, within 180 days: stays
    quarantine_at(clean_warehouse, 2, days_ago=100, replayed=True)  # landed by a replay, past 90 days: goes
    quarantine_at(clean_warehouse, 3, days_ago=30, replayed=True)  # inside the 35-day window: stays
    quarantine_at(clean_warehouse, 4, days_ago=1)

    report = apply_retention(clean_warehouse, POLICY, chunk=1)  # a chunk of one row: the chunks add up

    assert report.deleted["raw.quarantined_events"] == 2
    left = clean_warehouse.fetch_all("SELECT kafka_offset FROM raw.quarantined_events ORDER BY 1")
    assert left == [(1,), (3,), (4,)]
    result = check(clean_warehouse)  # the batches quarantined 5; 3 held + 2 retention counted
    assert result.passed, result.description
    assert apply_retention(clean_warehouse, POLICY).deleted["raw.quarantined_events"] == 0


def test_a_policy_that_would_reach_into_the_reconciliation_window_keeps_it(clean_warehouse: PostgresResource):
    # A resource configured by hand (the settings refuse this): reconciliation's window still wins.
    quarantine_at(clean_warehouse, 0, days_ago=20)
    quarantine_at(clean_warehouse, 1, days_ago=40)

    apply_retention(
        clean_warehouse, RetentionPolicy(reconcile_days=35, ops_retention_days=1, quarantine_retention_days=1)
    )

    assert clean_warehouse.fetch_all("SELECT kafka_offset FROM raw.quarantined_events") == [(0,)]


def test_old_batches_roll_up_into_one_row_an_hour_and_the_accounting_check_still_holds(
    clean_warehouse: PostgresResource,
):
    land_messages(clean_warehouse, charges(range(0, 5)))
    land_messages(clean_warehouse, charges(range(5, 10)))
    land_messages(clean_warehouse, [*charges(range(10, 12)), Message(value=b"[]", key=b"k", offset=12)])
    land_messages(clean_warehouse, charges(range(0, 3), partition=1))
    land_messages(clean_warehouse, charges(range(13, 15)))  # recent: stays as it is
    as_owner(
        clean_warehouse,
        "UPDATE ops.stream_batches SET committed_at = date_trunc('hour', now() - interval '100 days') "
        "+ interval '10 minutes', started_at = now() - interval '100 days' "
        "WHERE NOT offset_ranges @> '[{\"from\": 13}]'",
    )
    replay_quarantine(clean_warehouse)  # a replay's rows count too (nothing lands: [] is not an object)

    report = apply_retention(clean_warehouse, POLICY)

    assert (report.batches_rolled_up, report.rollup_rows, report.deleted["ops.stream_batches"]) == (4, 1, 3)
    rows = clean_warehouse.fetch_all(
        "SELECT batch_count, consumed, inserted, quarantined, offset_ranges FROM ops.stream_batches "
        "ORDER BY batch_count DESC"
    )
    assert [r[:4] for r in rows] == [(4, 16, 15, 1), (1, 2, 2, 0)]
    assert [(r["partition"], r["from"], r["to"]) for r in rows[0][4]] == [(0, 0, 12), (1, 0, 2)]
    result = check(clean_warehouse)
    assert result.passed, result.description
    assert (result.metadata["consumed"].value, result.metadata["offsets_in_ranges"].value) == (18, 18)
    assert apply_retention(clean_warehouse, POLICY).batches_rolled_up == 0  # rolled up once


def test_a_gap_in_old_batches_is_still_reported_after_they_roll_up(clean_warehouse: PostgresResource):
    land_messages(clean_warehouse, charges(range(0, 5)))
    land_messages(clean_warehouse, charges(range(8, 10)))  # offsets 5-7 never read
    as_owner(clean_warehouse, "UPDATE ops.stream_batches SET committed_at = now() - interval '100 days'")
    before = check(clean_warehouse)

    apply_retention(clean_warehouse, POLICY)

    after = check(clean_warehouse)
    assert not before.passed and not after.passed
    assert after.metadata["offsets_in_gaps"].value == before.metadata["offsets_in_gaps"].value == 3


def test_lag_run_failures_and_dbt_runs_go_after_the_ops_retention_but_each_models_last_run_and_success_stay(
    clean_warehouse: PostgresResource,
):
    as_owner(
        clean_warehouse,
        "INSERT INTO ops.stream_lag (observed_at, kafka_topic, kafka_partition, end_offset, committed_offset) "
        "VALUES (now() - interval '100 days', 't', 0, 5, 5), (now() - interval '1 day', 't', 0, 9, 9)",
    )
    as_owner(
        clean_warehouse,
        "INSERT INTO ops.dagster_run_failures (run_id, job_name, failed_at, message) "
        "VALUES ('old', 'j', now() - interval '100 days', 'm'), ('new', 'j', now() - interval '1 day', 'm')",
    )
    runs = [
        ("i1", "model.a", "success", 200),  # a later success exists: goes
        ("i2", "model.a", "error", 100),  # goes
        ("i3", "model.a", "success", 5),
        ("i1", "model.b", "success", 200),  # b's last run: stays
        ("i1", "model.c", "success", 200),  # c's last success: stays
        ("i2", "model.c", "error", 100),  # c's last run: stays
    ]
    with clean_warehouse.connect(login=Login.TRANSFORMER) as conn:  # what dbt's on-run-end hook signs in as
        for invocation, node, status, days in runs:
            conn.execute(
                "INSERT INTO ops.dbt_node_runs (invocation_id, unique_id, resource_type, status, completed_at) "
                "VALUES (%s, %s, 'model', %s, now() - make_interval(days => %s))",
                [invocation, node, status, days],
            )

    report = apply_retention(clean_warehouse, POLICY)

    assert {t: report.deleted[t] for t in ("ops.stream_lag", "ops.dagster_run_failures", "ops.dbt_node_runs")} == {
        "ops.stream_lag": 1,
        "ops.dagster_run_failures": 1,
        "ops.dbt_node_runs": 2,
    }
    assert clean_warehouse.fetch_all("SELECT end_offset FROM ops.stream_lag") == [(9,)]
    assert clean_warehouse.fetch_all("SELECT run_id FROM ops.dagster_run_failures") == [("new",)]
    kept = clean_warehouse.fetch_all(
        "SELECT invocation_id, unique_id FROM ops.dbt_node_runs ORDER BY 2, 1", login=Login.TRANSFORMER
    )
    assert kept == [("i3", "model.a"), ("i1", "model.b"), ("i1", "model.c"), ("i2", "model.c")]
    recorded = dict(clean_warehouse.fetch_all("SELECT table_name, rows_deleted FROM ops.retention_deletions"))
    assert recorded == {"ops.stream_lag": 1, "ops.dagster_run_failures": 1, "ops.dbt_node_runs": 2}


def test_the_daily_job_reports_what_it_deleted_per_table(clean_warehouse: PostgresResource):
    quarantine_at(clean_warehouse, 0, days_ago=200)

    result = ops_retention_job.execute_in_process(resources={"postgres": clean_warehouse, "retention": POLICY})

    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["deleted raw.quarantined_events"].value == 1
    assert metadata["deleted ops.stream_lag"].value == 0


@pytest.mark.parametrize("variable", ["TXSTREAM_OPS_RETENTION_DAYS", "TXSTREAM_QUARANTINE_RETENTION_DAYS"])
def test_a_retention_shorter_than_the_reconciliation_window_is_refused(monkeypatch, variable):
    monkeypatch.setenv("TXSTREAM_RECONCILE_DAYS", "35")
    monkeypatch.setenv(variable, "30")

    with pytest.raises(ValidationError, match=f"{variable}=30 is shorter than TXSTREAM_RECONCILE_DAYS=35"):
        load_settings()
