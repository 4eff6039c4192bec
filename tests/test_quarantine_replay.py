"""Replaying quarantined messages through the current transform, exactly once, against real PostgreSQL.

Hostile messages reach the quarantine through the stream's own transform and sink
(`land_messages`). The message a replay should land is one an older release of the
transform rejected: Stripe's Refund object has no `livemode`, and a parser that
required it quarantined every refund (`missing_field`). Its quarantine row is written
by the sink exactly as that release's batch wrote it, bytes, headers and coordinates
included; the current transform accepts those bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from resource_helpers import spark_resource
from stream_helpers import Message, kafka_batch, land_messages, message_for, write_batch
from stripe_helpers import stripe_fixture
from txstream_dagster.cli.quarantine import parse_since
from txstream_dagster.defs.stream.checks import every_message_is_accounted_for
from txstream_dagster.defs.stream.quarantine import replay_chunk, replay_quarantine
from txstream_dagster.defs.stream.replay import replay_quarantine_job
from txstream_dagster.resources import PostgresResource
from txstream_spark.transform import OUTPUT_SCHEMA, TYPED_COLUMNS, transform_batch

TOPIC = "stripe.events"  # what stream_helpers.kafka_batch stamps on every message
TOPIC_ID = "test-topic"
REFUND = stripe_fixture("refund")  # as Stripe sends it: no livemode


def quarantined_by_an_older_release(
    postgres: PostgresResource, messages: list[Message], reason: str, detail: str
) -> None:
    """One batch through the sink, each message quarantined for `reason` as an older transform did: the row the
    current transform makes of it, turned into the quarantine row (bytes, headers as text) that release wrote."""
    rows = transform_batch(kafka_batch(messages, TOPIC), TOPIC_ID).to_pylist()
    for row, message in zip(rows, messages, strict=True):
        row.update(dict.fromkeys([*TYPED_COLUMNS], None))
        row.update(
            kafka_key=message.key,
            raw_value=message.value,
            headers=orjson.dumps({k: v.decode() for k, v in message.headers}).decode(),
            quarantine_reason=reason,
            quarantine_detail=detail,
        )
    with postgres.connect() as conn:
        write_batch(conn, pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA))


def refund(number: int, offset: int, **fields) -> Message:
    obj = {**REFUND, "id": f"re_replay_{number}", **fields}
    return message_for(obj, partition=0, offset=offset)


def charge(number: int, offset: int, **fields) -> Message:
    return message_for({**stripe_fixture("charge"), "id": f"ch_replay_{number}", **fields}, partition=0, offset=offset)


def land_hostile_messages(postgres: PostgresResource) -> None:
    """Offsets 0-2: what the current transform quarantines too."""
    land_messages(
        postgres,
        [
            Message(value=b'{"id": "ch_cut_off', key=b"ch_cut_off", offset=0),
            charge(1, offset=1, amount=-5),
            Message(value=b"\xff\xfe not utf-8", key=b"bad", offset=2),
        ],
        topic_id=TOPIC_ID,
    )


def txstream(*args: str) -> str:
    """The command's output, run as a person runs it (a wide terminal, so table cells stay on one line)."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "txstream"), *args],
        env={**os.environ, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def accounting_passes(postgres: PostgresResource) -> bool:
    result = every_message_is_accounted_for(postgres=postgres, spark=spark_resource())
    assert result.passed, result.description
    return result.passed


def quarantine_row(postgres: PostgresResource, offset: int) -> dict:
    with postgres.connect() as conn:
        cur = conn.execute(
            "SELECT reason, detail, first_reason, replay_attempts, replayed_at, replayed_as "
            "FROM raw.quarantined_events WHERE kafka_partition = 0 AND kafka_offset = %s",
            [offset],
        )
        assert cur.description is not None
        return dict(zip([c.name for c in cur.description], cur.fetchone() or (), strict=False))


def transactions(postgres: PostgresResource) -> list[tuple]:
    return postgres.fetch_all(
        "SELECT object_id, payload, kafka_partition, kafka_offset, landed_xid::text, ingested_at "
        "FROM raw.transactions ORDER BY object_id"
    )


def test_a_message_an_older_release_rejected_lands_once_and_its_quarantine_row_is_marked(
    clean_warehouse: PostgresResource,
):
    land_hostile_messages(clean_warehouse)
    quarantined_by_an_older_release(clean_warehouse, [refund(1, offset=3)], "missing_field", "refund has no 'livemode'")
    assert clean_warehouse.fetch_all("SELECT object_id FROM raw.transactions") == []

    report = replay_quarantine(clean_warehouse)

    assert (report.replayed, report.inserted, report.updated, report.duplicates) == (4, 1, 0, 0)
    assert dict(report.still_failing) == {"invalid_json": 1, "invalid_value": 1, "invalid_utf8": 1}
    [(object_id, payload, partition, offset, *_)] = transactions(clean_warehouse)
    assert (object_id, partition, offset) == ("re_replay_1", 0, 3)
    assert payload == {**REFUND, "id": "re_replay_1"}
    landed = quarantine_row(clean_warehouse, 3)
    assert landed["replayed_as"] == "re_replay_1" and landed["replayed_at"] is not None
    assert landed["replay_attempts"] == 1
    assert landed["reason"] == "missing_field"  # why it was quarantined stays on record
    assert accounting_passes(clean_warehouse)  # consumed = landed + quarantined, replays included


def test_a_second_replay_changes_nothing_it_already_landed(clean_warehouse: PostgresResource):
    land_hostile_messages(clean_warehouse)
    quarantined_by_an_older_release(clean_warehouse, [refund(1, offset=3)], "missing_field", "refund has no 'livemode'")
    replay_quarantine(clean_warehouse)
    landed_before, marked_before = transactions(clean_warehouse), quarantine_row(clean_warehouse, 3)

    again = replay_quarantine(clean_warehouse)

    assert (again.replayed, again.landed) == (3, 0)  # only the three still failing were tried again
    assert transactions(clean_warehouse) == landed_before  # same rows, same transaction ids, same times
    assert quarantine_row(clean_warehouse, 3) == marked_before
    assert quarantine_row(clean_warehouse, 1)["replay_attempts"] == 2
    assert accounting_passes(clean_warehouse)


def test_a_message_that_still_fails_stays_quarantined_with_its_new_reason(clean_warehouse: PostgresResource):
    # An older release crashed on a negative amount; the current transform names what is wrong.
    quarantined_by_an_older_release(
        clean_warehouse, [charge(2, offset=0, amount=-1)], "unparseable", "ValueError: negative"
    )

    report = replay_quarantine(clean_warehouse)

    assert (report.replayed, report.landed, dict(report.still_failing)) == (1, 0, {"invalid_value": 1})
    row = quarantine_row(clean_warehouse, 0)
    assert (row["reason"], row["first_reason"], row["replay_attempts"]) == ("invalid_value", "unparseable", 1)
    assert "'amount' is negative" in row["detail"]
    assert row["replayed_at"] is None
    assert accounting_passes(clean_warehouse)


def test_a_replayed_version_older_than_the_one_held_lands_as_a_duplicate(clean_warehouse: PostgresResource):
    # The same upsert as the stream's: the later version of an object wins, whichever landed first.
    base_ms = int(datetime.now(UTC).timestamp() * 1000)
    old = message_for({**REFUND, "id": "re_versions", "status": "pending"}, event_time_ms=base_ms, offset=0)
    new = message_for({**REFUND, "id": "re_versions", "status": "succeeded"}, event_time_ms=base_ms + 1, offset=1)
    quarantined_by_an_older_release(clean_warehouse, [old], "missing_field", "refund has no 'livemode'")
    land_messages(clean_warehouse, [new], topic_id=TOPIC_ID)

    report = replay_quarantine(clean_warehouse)

    assert (report.inserted, report.updated, report.duplicates) == (0, 0, 1)
    assert clean_warehouse.fetch_all("SELECT status FROM raw.transactions") == [("succeeded",)]
    assert quarantine_row(clean_warehouse, 0)["replayed_as"] == "re_versions"
    assert accounting_passes(clean_warehouse)


def test_a_replay_that_dies_before_committing_leaves_everything_as_it_was(clean_warehouse: PostgresResource):
    quarantined_by_an_older_release(
        clean_warehouse, [refund(n, offset=n) for n in range(3)], "missing_field", "refund has no 'livemode'"
    )
    with clean_warehouse.connect() as conn:
        replay_chunk(conn)  # the whole chunk done in its transaction, then the connection is lost
        conn.close()

    assert clean_warehouse.fetch_all("SELECT object_id FROM raw.transactions") == []
    assert quarantine_row(clean_warehouse, 0)["replay_attempts"] == 0
    assert accounting_passes(clean_warehouse)
    assert replay_quarantine(clean_warehouse).inserted == 3
    assert accounting_passes(clean_warehouse)


def test_a_dry_run_reports_what_a_replay_would_do_and_writes_nothing(clean_warehouse: PostgresResource):
    land_hostile_messages(clean_warehouse)
    quarantined_by_an_older_release(clean_warehouse, [refund(1, offset=3)], "missing_field", "refund has no 'livemode'")

    dry = replay_quarantine(clean_warehouse, dry_run=True)

    assert (dry.replayed, dry.inserted, dry.still_failing.total()) == (4, 1, 3)
    assert clean_warehouse.fetch_all("SELECT object_id FROM raw.transactions") == []
    assert quarantine_row(clean_warehouse, 3)["replay_attempts"] == 0
    assert replay_quarantine(clean_warehouse).inserted == 1


def test_reason_and_since_choose_what_is_replayed(clean_warehouse: PostgresResource):
    land_hostile_messages(clean_warehouse)
    quarantined_by_an_older_release(clean_warehouse, [refund(1, offset=3)], "missing_field", "refund has no 'livemode'")
    with clean_warehouse.connect() as conn:
        conn.execute("UPDATE raw.quarantined_events SET quarantined_at = now() - interval '3 days'")

    assert replay_quarantine(clean_warehouse, reason="invalid_json").replayed == 1
    assert replay_quarantine(clean_warehouse, since=datetime.now(UTC) - timedelta(days=1)).replayed == 0
    assert replay_quarantine(clean_warehouse, reason="missing_field").inserted == 1


def test_a_replay_skips_what_another_replay_holds_and_each_message_lands_once(clean_warehouse: PostgresResource):
    quarantined_by_an_older_release(
        clean_warehouse, [refund(n, offset=n) for n in range(10)], "missing_field", "refund has no 'livemode'"
    )
    with clean_warehouse.connect() as first:
        held, _ = replay_chunk(first, limit=4)  # still in its transaction: offsets 0-3 locked
        second = replay_quarantine(clean_warehouse)
        first.commit()

    assert (held.inserted, second.inserted) == (4, 6)
    assert clean_warehouse.fetch_all(
        "SELECT count(*), sum(replay_attempts), count(replayed_at) FROM raw.quarantined_events"
    ) == [(10, 10, 10)]
    assert clean_warehouse.fetch_all("SELECT sum(replayed), sum(inserted) FROM ops.quarantine_replays") == [(10, 10)]
    assert accounting_passes(clean_warehouse)


def test_replays_racing_each_other_land_every_message_once(clean_warehouse: PostgresResource):
    quarantined_by_an_older_release(
        clean_warehouse, [refund(n, offset=n) for n in range(120)], "missing_field", "refund has no 'livemode'"
    )
    reports: list = []
    start = threading.Barrier(3)

    def replay() -> None:
        start.wait()
        reports.append(replay_quarantine(clean_warehouse, chunk=7))

    racers = [threading.Thread(target=replay) for _ in range(3)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)

    assert sum(r.replayed for r in reports) == sum(r.inserted for r in reports) == 120
    assert clean_warehouse.fetch_all("SELECT max(replay_attempts), count(replayed_at) FROM raw.quarantined_events") == [
        (1, 120)
    ]
    assert accounting_passes(clean_warehouse)


def test_the_replay_job_reports_what_landed_and_what_still_fails_by_reason(clean_warehouse: PostgresResource):
    land_hostile_messages(clean_warehouse)
    quarantined_by_an_older_release(clean_warehouse, [refund(1, offset=3)], "missing_field", "refund has no 'livemode'")

    result = replay_quarantine_job.execute_in_process(
        run_config={"ops": {"replay_quarantined_messages": {"config": {"since": "2000-01-01T00:00:00Z"}}}},
        resources={"postgres": clean_warehouse},
    )

    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert (metadata["replayed"].value, metadata["landed"].value, metadata["still_failing"].value) == (4, 1, 3)
    assert metadata["still_failing_by_reason"].value == {"invalid_json": 1, "invalid_value": 1, "invalid_utf8": 1}
    [materialization] = result.asset_materializations_for_node("replay_quarantined_messages")
    assert materialization.asset_key.to_user_string() == "raw_transactions"  # downstream models update


def test_the_command_line_lists_by_reason_and_replays(clean_warehouse: PostgresResource):
    land_hostile_messages(clean_warehouse)
    quarantined_by_an_older_release(clean_warehouse, [refund(1, offset=3)], "missing_field", "refund has no 'livemode'")

    listed = txstream("quarantine", "list")
    for reason in ("missing_field", "invalid_json", "invalid_value", "invalid_utf8"):
        assert reason in listed
    assert "refund has no 'livemode'" in listed
    assert "pending" in listed

    dry = txstream("quarantine", "replay", "--reason", "missing_field", "--dry-run")
    assert "dry run" in dry and "landed 1" in dry

    replayed = txstream("quarantine", "replay")
    assert "replayed 4: landed 1 (inserted 1" in replayed
    assert "still failing: invalid_json 1" in replayed

    after = txstream("quarantine", "list", "--reason", "missing_field")
    assert "landed" in after and "re_replay_1" in after
    assert "invalid_json" not in after


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", datetime(2026, 11, 24, 12, 0, tzinfo=UTC)),
        ("90m", datetime(2026, 12, 1, 10, 30, tzinfo=UTC)),
        ("2026-11-30", datetime(2026, 11, 30, tzinfo=UTC)),  # no zone: UTC
        ("2026-11-30T09:00+01:00", datetime(2026, 11, 30, 8, 0, tzinfo=UTC)),
    ],
)
def test_since_takes_a_duration_back_from_now_or_a_time(text, expected):
    assert parse_since(text, now=datetime(2026, 12, 1, 12, 0, tzinfo=UTC)) == expected
