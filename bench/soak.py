"""Soak: a steady synthetic load through the continuous stream for minutes; lag, memory (PSS) and Kafka's disk.

    python bench/soak.py [--minutes 10] [--rate 500] [--sample-seconds 10] [--retention-mib 32]

Fails (exit 1) when lag grows without bound (the stream cannot keep up), when the
memory of a process (Kafka's included) climbs steadily (a leak), or when Kafka's
log outgrows what its retention allows: the embedded Kafka runs with a small
`TXSTREAM_LOCAL_KAFKA_RETENTION_BYTES` here so that retention bites within the run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import psutil

from throwaway_stack import stack_spark, throwaway_stack
from txstream_dagster.defs.stream.offsets import committed_offsets
from txstream_dagster.defs.stripe_source.topic_feeds import publish_synthetic
from txstream_dagster.dev.stack import LocalStack
from txstream_dagster.settings import load_settings

# A process "leaks" when, over the second half of the run, its memory rises this fast, steadily.
LEAK_MIB_PER_MINUTE = 8.0
STEADY_R2 = 0.8
# Synthetic objects average about 2.5 KB of JSON; with key, headers and batch overhead ~3 KB in Kafka's log.
MEAN_MESSAGE_BYTES = 3_000


def pss_mib(processes: list[psutil.Process]) -> float:
    """Proportional set size: shared pages (PostgreSQL's shared buffers, forked workers) counted once."""
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_full_info().pss
    return total / 2**20


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def postgres_processes(port: int) -> list[psutil.Process]:
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and f"-p {port}" in " ".join(process.info["cmdline"] or []):
            return tree(process.pid)
    return []


def folder_mib(path) -> float:
    """Disk the folder takes (allocated blocks: Kafka's index files are sparse)."""
    total = 0
    for file in path.rglob("*"):
        with contextlib.suppress(FileNotFoundError):  # a segment retention deleted while we looked
            total += file.stat().st_blocks * 512 if file.is_file() else 0
    return total / 2**20


def server_properties_of(stack: LocalStack) -> dict[str, str]:
    lines = stack.kafka.properties_path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def produced_mib(samples: list[dict], rate: float) -> float:
    """Roughly what the producer wrote over the run."""
    return samples[-1]["minute"] * 60 * rate * MEAN_MESSAGE_BYTES / 2**20 if samples else 0.0


def slope_and_r2(xs: list[float], ys: list[float]) -> tuple[float, float]:
    if len(xs) < 3 or statistics.pvariance(ys) == 0:
        return 0.0, 0.0
    slope, intercept = statistics.linear_regression(xs, ys)
    predicted = [slope * x + intercept for x in xs]
    residual = sum((y - p) ** 2 for y, p in zip(ys, predicted, strict=False))
    total = sum((y - statistics.fmean(ys)) ** 2 for y in ys)
    return slope, 1 - residual / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--sample-seconds", type=float, default=10)
    parser.add_argument("--retention-mib", type=int, default=32, help="the embedded Kafka's retention per partition")
    args = parser.parse_args()
    retention_bytes = args.retention_mib * 2**20
    os.environ.setdefault("TXSTREAM_LOCAL_KAFKA_RETENTION_BYTES", str(retention_bytes))

    with throwaway_stack() as (postgres, kafka):
        spark = stack_spark()
        command = spark.submit_command(
            bootstrap=kafka.bootstrap, topic=kafka.topic, trigger="processing-time", interval="500 milliseconds"
        )
        job = subprocess.Popen(
            command,
            env={**os.environ, **spark.job_env(postgres)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        stop = threading.Event()
        producer = threading.Thread(
            target=publish_synthetic, daemon=True, kwargs=dict(kafka=kafka, seed=1, rate=args.rate, stop=stop)
        )
        stack = LocalStack(load_settings())
        kafka_pid = stack.kafka.pid_file.live_process().pid
        partitions = kafka.describe_topic().partitions
        # Retention deletes closed segments only: each partition holds at most retention + one segment, plus
        # what arrives between two retention checks and a deleted segment's removal, plus metadata and indexes.
        kafka_config = server_properties_of(stack)
        segment_bytes = int(kafka_config["log.segment.bytes"])
        lag_s = (
            int(kafka_config["log.retention.check.interval.ms"]) + int(kafka_config["file.delete.delay.ms"])
        ) / 1000
        disk_bound_mib = (
            partitions * (retention_bytes + segment_bytes) + args.rate * MEAN_MESSAGE_BYTES * lag_s
        ) / 2**20 + 64
        pg_port = stack.postgres.running_port()

        samples = []
        started = time.monotonic()
        producer.start()
        try:
            while time.monotonic() - started < args.minutes * 60:
                time.sleep(args.sample_seconds)
                ends = kafka.end_offsets()
                lag = sum(ends.values()) - committed_offsets(postgres, kafka.topic).total
                sample = {
                    "minute": (time.monotonic() - started) / 60,
                    "lag": max(lag, 0),
                    "spark job": pss_mib(tree(job.pid)),
                    "producer (this process)": pss_mib([psutil.Process()]),
                    "postgresql": pss_mib(postgres_processes(pg_port)),
                    "kafka": pss_mib(tree(kafka_pid)),
                }
                sample["kafka disk"] = folder_mib(stack.kafka.log_dir)
                samples.append(sample)
                if len(samples) == 1 or int(samples[-1]["minute"]) > int(samples[-2]["minute"]):  # a line a minute
                    print(
                        f"{sample['minute']:5.1f} min  lag {sample['lag']:>7,}  "
                        + "  ".join(f"{k} {v:,.0f} MiB" for k, v in sample.items() if k not in ("minute", "lag")),
                        flush=True,
                    )
                if job.poll() is not None:
                    raise SystemExit(f"the stream job exited with code {job.returncode}")
        finally:
            stop.set()
            producer.join(60)
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(60)
        landed = postgres.fetch_one("SELECT count(*) FROM raw.transactions")[0]

    second_half = samples[len(samples) // 2 :]
    minutes = [s["minute"] for s in second_half]
    failures = []
    lag_slope, lag_r2 = slope_and_r2(minutes, [s["lag"] for s in second_half])
    # Growing without bound: lag keeps rising steadily, by more than a minute of arrivals over the run.
    if lag_slope * (minutes[-1] - minutes[0]) > args.rate * 60 and lag_r2 > STEADY_R2:
        failures.append(f"lag grows by {lag_slope:,.0f} messages a minute: the stream does not keep up")
    print(f"\nrate {args.rate:,.0f} events/s for {args.minutes:g} min; {landed:,} objects landed")
    print(
        f"lag: median {statistics.median(s['lag'] for s in samples):,.0f}, max {max(s['lag'] for s in samples):,}, "
        f"trend over the second half {lag_slope:+,.0f}/min (R² {lag_r2:.2f})"
    )
    for name in [k for k in samples[0] if k not in ("minute", "lag", "kafka disk")]:
        slope, r2 = slope_and_r2(minutes, [s[name] for s in second_half])
        print(
            f"memory {name:<26} first {samples[0][name]:7,.0f} MiB  last {samples[-1][name]:7,.0f} MiB  "
            f"trend {slope:+6.1f} MiB/min (R² {r2:.2f})"
        )
        if slope > LEAK_MIB_PER_MINUTE and r2 > STEADY_R2:
            failures.append(f"{name} memory climbs {slope:.1f} MiB/min, steadily")
    disk = [s["kafka disk"] for s in samples]
    written_mib = produced_mib(samples, args.rate)
    disk_slope, _ = slope_and_r2(minutes, [s["kafka disk"] for s in second_half])
    print(
        f"kafka disk                        max {max(disk):7,.0f} MiB  last {disk[-1]:7,.0f} MiB  "
        f"trend {disk_slope:+6.1f} MiB/min over the second half (bound {disk_bound_mib:,.0f} MiB from "
        f"{partitions} partitions × ({args.retention_mib} MiB retention + a segment) and retention's delays; "
        f"~{written_mib:,.0f} MiB produced)"
    )
    if max(disk) > disk_bound_mib:
        failures.append(
            f"Kafka's log reached {max(disk):,.0f} MiB, beyond what retention allows ({disk_bound_mib:,.0f})"
        )
    for failure in failures:
        print(f"FAIL {failure}")
    print("PASS" if not failures else "")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
