"""Continuous mode: event produced → row committed in PostgreSQL, at a steady rate.

    python bench/stream_latency.py [--rate 1000] [--seconds 60] [--interval "500 milliseconds"]

The job runs as `txstream stream --continuous` runs it. Each message's
`txstream-event-time` header is stamped when it is sent; latency is the commit
time of the micro-batch that landed it (ops.stream_batches.committed_at, taken
with clock_timestamp() at the end of the transaction) minus that stamp. The
first 10 seconds (Spark start-up, cold Python workers) are left out.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from datetime import UTC

import psutil

from bench_data import synthetic_messages
from throwaway_stack import stack_spark, throwaway_stack
from txstream_spark.event_contract import HEADER_EVENT_TIME

WARM_UP_S = 10

LATENCIES = """
SELECT count(*),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency),
       max(latency)
FROM (
    SELECT extract(epoch FROM b.committed_at - t.event_time) AS latency
    FROM raw.transactions t
    JOIN ops.stream_batches b ON EXISTS (
        SELECT 1 FROM jsonb_to_recordset(b.offset_ranges) AS r(partition int, "from" bigint, "to" bigint)
        WHERE r.partition = t.kafka_partition AND t.kafka_offset BETWEEN r."from" AND r."to")
    WHERE t.event_time > %s
) latencies
"""


# The sink's share (staging in the tasks + applying) and how often batches commit.
BATCHES = """
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM committed_at - started_at)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY gap)
FROM (SELECT committed_at, started_at,
             extract(epoch FROM committed_at - lag(committed_at) OVER (ORDER BY committed_at)) AS gap
      FROM ops.stream_batches) b
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", default="500 milliseconds")
    args = parser.parse_args()

    messages = synthetic_messages(int(args.rate * (args.seconds + WARM_UP_S)))
    with throwaway_stack() as (postgres, kafka):
        spark = stack_spark()
        command = spark.submit_command(
            bootstrap=kafka.bootstrap, topic=kafka.topic, trigger="processing-time", interval=args.interval
        )
        job = subprocess.Popen(
            command, env={**os.environ, **spark.job_env(postgres)}, stdout=subprocess.DEVNULL, start_new_session=True
        )
        try:
            time.sleep(15)  # let Spark start before the clock runs
            producer = kafka.producer(linger_ms=5)
            started = time.time()
            for i, (key, value, headers) in enumerate(messages):
                due = started + i / args.rate
                if (pause := due - time.time()) > 0:
                    time.sleep(pause)
                stamped = [
                    (k, str(int(time.time() * 1000)).encode() if k == HEADER_EVENT_TIME else v) for k, v in headers
                ]
                producer.send(kafka.topic, key=key, value=value, headers=stamped)
            producer.flush()
            sent_rate = len(messages) / (time.time() - started)
            deadline = time.time() + 60
            while postgres.fetch_one("SELECT count(*) FROM raw.transactions")[0] < len({k for k, _, _ in messages}):
                if time.time() > deadline:
                    raise SystemExit("not every message landed within 60 s of the last send")
                time.sleep(0.5)
            rss = sum(
                p.memory_info().rss
                for p in [psutil.Process(job.pid), *psutil.Process(job.pid).children(recursive=True)]
            )
        finally:
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(60)
        from datetime import datetime

        count, (p50, p95, p99), worst = postgres.fetch_one(
            LATENCIES, [datetime.fromtimestamp(started + WARM_UP_S, UTC)]
        )
        batches, sink_s, interval_s = postgres.fetch_one(BATCHES)

    print(
        f"rate sent             {sent_rate:>8,.0f} events/s for {args.seconds + WARM_UP_S:.0f} s "
        f"(trigger every {args.interval})"
    )
    print(f"rows measured         {count:>8,}  (after a {WARM_UP_S} s warm-up)")
    print(f"latency p50           {p50:>8.3f} s")
    print(f"latency p95           {p95:>8.3f} s  (goal ≤ 1 s)")
    print(f"latency p99           {p99:>8.3f} s")
    print(f"latency max           {worst:>8.3f} s")
    print(f"micro-batches         {batches:>8,}  (median {interval_s:.3f} s apart; sink {sink_s:.3f} s each)")
    print(f"job memory (RSS)      {rss / 2**20:>8,.0f} MiB  (JVM + Python workers)")


if __name__ == "__main__":
    main()
