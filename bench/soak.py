"""Soak: a steady synthetic load through the continuous stream for minutes; lag and memory (PSS) over time.

    python bench/soak.py [--minutes 10] [--rate 500] [--sample-seconds 10]

Fails (exit 1) when lag grows without bound (the stream cannot keep up) or the
memory of a txstream process climbs steadily (a leak). The embedded broker's
memory is reported but not judged: it keeps every message in memory by design
(no retention), so it grows by the data volume.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import psutil

from throwaway_stack import throwaway_stack
from txstream_dagster.local_stack import LocalStack
from txstream_dagster.defs.stream.offsets import committed_offsets
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.defs.stripe_source.production import publish_synthetic
from txstream_dagster.settings import get_settings

# A process "leaks" when, over the second half of the run, its memory rises this fast, steadily.
LEAK_MIB_PER_MINUTE = 8.0
STEADY_R2 = 0.8


def pss_mib(processes: list[psutil.Process]) -> float:
    """Proportional set size: shared pages (PostgreSQL's shared buffers, forked workers) counted once."""
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except psutil.Error:
            pass
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


def slope_and_r2(xs: list[float], ys: list[float]) -> tuple[float, float]:
    if len(xs) < 3 or statistics.pvariance(ys) == 0:
        return 0.0, 0.0
    slope, intercept = statistics.linear_regression(xs, ys)
    predicted = [slope * x + intercept for x in xs]
    residual = sum((y - p) ** 2 for y, p in zip(ys, predicted))
    total = sum((y - statistics.fmean(ys)) ** 2 for y in ys)
    return slope, 1 - residual / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--sample-seconds", type=float, default=10)
    args = parser.parse_args()

    with throwaway_stack() as (postgres, kafka):
        spark = SparkResource(master="local[2]",
                              checkpoint_root=os.environ["TXSTREAM_DATA_DIR"] + "/ckpt")
        command = spark.submit_command(bootstrap=kafka.resolved_bootstrap(), topic=kafka.topic,
                                       trigger="processing-time", fail_on_data_loss=False,
                                       interval="500 milliseconds")
        job = subprocess.Popen(command, env={**os.environ, **spark.job_env(postgres.resolved_url())},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        stop = threading.Event()
        producer = threading.Thread(target=publish_synthetic, daemon=True, kwargs=dict(
            kafka=kafka, seed=1, rate=args.rate, stop=stop, postgres=postgres))
        stack = LocalStack(get_settings())
        broker_pid = stack.broker.pid_file.live_process().pid
        pg_port = stack.postgres.running_port()

        samples = []
        started = time.monotonic()
        producer.start()
        try:
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                time.sleep(args.sample_seconds)
                ends = kafka.end_offsets()
                lag = sum(ends.values()) - committed_offsets(postgres, kafka.topic).total
                sample = {
                    "minute": (time.monotonic() - started) / 60,
                    "lag": max(lag, 0),
                    "spark job": pss_mib(tree(job.pid)),
                    "producer (this process)": pss_mib([psutil.Process()]),
                    "postgresql": pss_mib(postgres_processes(pg_port)),
                    "broker (not judged)": pss_mib(tree(broker_pid)),
                }
                samples.append(sample)
                print(f"{sample['minute']:5.1f} min  lag {sample['lag']:>7,}  "
                      + "  ".join(f"{k} {v:,.0f} MiB" for k, v in sample.items() if k not in ("minute", "lag")),
                      flush=True)
        finally:
            stop.set()
            producer.join(60)
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(60)
        landed = postgres.fetch_one("SELECT count(*) FROM raw.transactions")[0]

    second_half = samples[len(samples) // 2:]
    minutes = [s["minute"] for s in second_half]
    failures = []
    lag_slope, lag_r2 = slope_and_r2(minutes, [s["lag"] for s in second_half])
    # Growing without bound: lag keeps rising steadily, by more than a minute of arrivals over the run.
    if lag_slope * (minutes[-1] - minutes[0]) > args.rate * 60 and lag_r2 > STEADY_R2:
        failures.append(f"lag grows by {lag_slope:,.0f} messages a minute: the stream does not keep up")
    print(f"\nrate {args.rate:,.0f} events/s for {args.minutes:g} min; {landed:,} objects landed")
    print(f"lag: median {statistics.median(s['lag'] for s in samples):,.0f}, max {max(s['lag'] for s in samples):,}, "
          f"trend over the second half {lag_slope:+,.0f}/min (R² {lag_r2:.2f})")
    for name in [k for k in samples[0] if k not in ("minute", "lag")]:
        slope, r2 = slope_and_r2(minutes, [s[name] for s in second_half])
        print(f"memory {name:<26} first {samples[0][name]:7,.0f} MiB  last {samples[-1][name]:7,.0f} MiB  "
              f"trend {slope:+6.1f} MiB/min (R² {r2:.2f})")
        if "not judged" not in name and slope > LEAK_MIB_PER_MINUTE and r2 > STEADY_R2:
            failures.append(f"{name} memory climbs {slope:.1f} MiB/min, steadily")
    for failure in failures:
        print(f"FAIL {failure}")
    print("PASS" if not failures else "")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
