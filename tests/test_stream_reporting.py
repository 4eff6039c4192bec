"""What the streaming job logs: every batch of a catch-up run; a continuous stream's batches summed, at most
every `log_every_s`, so a query that runs for days does not write a line a second into Dagster's event log."""

from __future__ import annotations

from txstream_spark.reporting import JobReporter
from txstream_spark.sink import BatchResult


def lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("[txstream-stream]")]


def test_a_catch_up_run_logs_every_batch(capsys):
    reporter = JobReporter("stripe.events")
    for batch_id in range(3):
        reporter.batch_committed(batch_id, BatchResult(consumed=10, inserted=10))
    assert [line.split(":")[0] for line in lines(capsys)] == [f"[txstream-stream] batch {n}" for n in range(3)]


def test_a_continuous_stream_logs_its_batches_summed_at_most_every_interval(capsys):
    reporter = JobReporter("stripe.events", log_every_s=3600)
    reporter.batch_committed(0, BatchResult(consumed=5, inserted=5))  # the first is logged at once
    for batch_id in range(1, 4):
        reporter.batch_committed(batch_id, BatchResult(consumed=10, inserted=7, updated=3))
    assert len(lines(capsys)) == 1

    reporter.logged_at -= 3600  # an interval later
    reporter.batch_committed(4, BatchResult(consumed=1, quarantined=1))
    [summed] = lines(capsys)
    assert summed == ("[txstream-stream] batches 1–4: consumed=31 inserted=21 updated=9 duplicates=0 quarantined=1")
    assert reporter.summary(1.0)["consumed"] == 36  # the totals count every batch
