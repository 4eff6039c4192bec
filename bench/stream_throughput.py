"""Sustained ingest Kafka → raw.transactions, beside a plain COPY of the same rows into the same table.

    python bench/stream_throughput.py [--messages 200000] [--max-offsets-per-trigger 50000]

Both figures come from one run on one machine. The Spark job runs exactly as
Dagster runs it (spark-submit, local[2], Spark's Kafka source, trigger availableNow). Sustained rate
= messages in batches 2..n / time between the first and last batch commits
(Spark start-up and the first, JIT-cold batch excluded; both are printed).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import time

import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from bench_data import charge_messages
from throwaway_stack import stack_spark, throwaway_stack
from txstream_dagster.settings import Settings
from txstream_spark.sink import ROW_COLUMNS
from txstream_spark.transform import KAFKA_MESSAGE_SCHEMA, transform_batch


def publish(kafka, messages) -> float:
    producer = kafka.producer()
    started = time.perf_counter()
    for key, value, headers in messages:
        producer.send(kafka.topic, key=key, value=value, headers=headers)
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def copy_baseline(postgres, messages) -> float:
    """COPY the rows the stream would write, pre-built, straight into raw.transactions."""
    batch = pa.RecordBatch.from_pylist(
        [
            {
                "key": k,
                "value": v,
                "topic": "bench",
                "partition": 0,
                "offset": i,
                "timestamp": None,
                "timestampType": 0,
                "headers": [{"key": hk, "value": hv} for hk, hv in h],
            }
            for i, (k, v, h) in enumerate(messages)
        ],
        schema=KAFKA_MESSAGE_SCHEMA,
    )
    rows = pa.Table.from_batches([transform_batch(batch)]).select(ROW_COLUMNS)
    buffer = io.BytesIO()
    pa_csv.write_csv(rows, buffer, pa_csv.WriteOptions(include_header=False))
    data = buffer.getvalue()
    with postgres.connect() as conn:
        started = time.perf_counter()
        statement = sql.SQL("COPY raw.transactions ({}) FROM STDIN WITH (FORMAT csv)").format(
            sql.SQL(", ").join(map(sql.Identifier, ROW_COLUMNS))
        )
        with conn.cursor().copy(statement) as copy:
            copy.write(data)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("TRUNCATE raw.transactions")
        conn.commit()
    return seconds


def run_stream(postgres, kafka, max_offsets: int) -> float:
    spark = stack_spark(max_offsets_per_trigger=max_offsets)
    command = spark.submit_command(bootstrap=kafka.bootstrap, topic=kafka.topic, trigger="available-now")
    started = time.perf_counter()
    subprocess.run(command, env={**os.environ, **spark.job_env(postgres)}, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument(
        "--max-offsets-per-trigger", type=int, default=Settings.model_fields["spark_max_offsets_per_trigger"].default
    )
    args = parser.parse_args()

    messages = charge_messages(args.messages)
    mean_bytes = sum(len(v) for _, v, _ in messages) / len(messages)
    with throwaway_stack() as (postgres, kafka):
        publish_s = publish(kafka, messages)
        copy_s = copy_baseline(postgres, messages)
        wall_s = run_stream(postgres, kafka, args.max_offsets_per_trigger)
        batches = postgres.fetch_all(
            "SELECT consumed, started_at, committed_at FROM ops.stream_batches ORDER BY committed_at"
        )
        landed = postgres.fetch_one("SELECT count(*) FROM raw.transactions")[0]

    steady = batches[1:]
    steady_rows = sum(c for c, _, _ in steady)
    steady_s = (batches[-1][2] - batches[0][2]).total_seconds() if len(batches) > 1 else float("nan")
    copy_rate = len(messages) / copy_s
    sustained = steady_rows / steady_s
    print(f"messages                  {len(messages):>10,}  (mean {mean_bytes:,.0f} bytes of Stripe JSON)")
    print(f"landed                    {landed:>10,}  in {len(batches)} batches of ≤ {args.max_offsets_per_trigger:,}")
    print(f"produce (kafka-python)    {len(messages) / publish_s:>10,.0f} msg/s")
    print(f"plain COPY baseline       {copy_rate:>10,.0f} rows/s  ({copy_s:.2f} s)")
    print(f"stream, sustained         {sustained:>10,.0f} rows/s  (batches 2..{len(batches)}, {steady_s:.2f} s)")
    print(f"stream, end to end        {len(messages) / wall_s:>10,.0f} rows/s  ({wall_s:.1f} s incl. Spark start-up)")
    print(f"ratio sustained / COPY    {sustained / copy_rate:>10.2f}  (goal ≥ 0.80)")


if __name__ == "__main__":
    main()
