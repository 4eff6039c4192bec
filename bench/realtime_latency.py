"""Real time in the default setup: event → raw.transactions and event → the revenue panels' view.

    python bench/realtime_latency.py [--rates 100,1000] [--seconds 60]

What `make run` and `make dev` run, on a throwaway embedded stack: `dagster dev` (the same
DagsterDev), whose stream sensor starts the continuous stream and whose declarative automation
builds the dbt models; forex rates for today. Then synthetic Stripe events are published at each
rate, each stamped (`txstream-event-time`) as it is sent, and for every charge:
- event → raw: the commit time of the micro-batch that landed it (ops.stream_batches.committed_at)
  minus its stamp;
- event → panels: when it first shows in marts.fct_transactions_live, the view the payments
  dashboard reads, polled as the dashboard's read-only login, minus its stamp (the poll's own
  duration included: what a dashboard refreshing that often would see).
CPU (cores busy: user + system time of every process the setup started, over wall time) and
resident memory are measured at idle (stream running, nothing arriving) and under each load.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from datetime import UTC, datetime

import psutil

from bench_data import synthetic_messages
from stream_latency import LATENCIES
from throwaway_stack import throwaway_stack
from txstream_dagster.db.logins import Login
from txstream_dagster.defs.stream.offsets import stream_running
from txstream_dagster.dev.dagster_dev import DagsterDev, dagster_dev_env, wait_until
from txstream_dagster.dev.demo import DEMO_FOREX_DAYS_PAST_END, PartitionBackfill
from txstream_dagster.dev.processes import free_port
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.settings import load_settings
from txstream_spark.event_contract import HEADER_EVENT_TIME

IDLE_S = 30
POLL_S = 0.25
SEEN = "SELECT charge_id FROM marts.fct_transactions_live WHERE charge_id = ANY(%s)"


class Footprint:
    """CPU and memory of the setup's processes: dagster dev's process group (webserver, daemon, code
    servers, runs, Spark) and the embedded PostgreSQL and Kafka with their children."""

    def __init__(self, dagster_pgid: int, data_dir: str):
        self.dagster_pgid, self.data_dir = dagster_pgid, data_dir

    def processes(self) -> list[psutil.Process]:
        roots = []
        for process in psutil.process_iter(["cmdline"]):
            try:
                if os.getpgid(process.pid) == self.dagster_pgid or self.data_dir in " ".join(
                    process.info["cmdline"] or []
                ):
                    roots.append(process)
            except (ProcessLookupError, psutil.Error):
                continue
        found = {p.pid: p for p in roots}
        for root in roots:
            try:
                found.update({c.pid: c for c in root.children(recursive=True)})
            except psutil.Error:
                continue
        return list(found.values())

    def cpu_seconds(self) -> dict[int, float]:
        seconds = {}
        for process in self.processes():
            try:
                times = process.cpu_times()
                seconds[process.pid] = times.user + times.system
            except psutil.Error:
                continue
        return seconds

    def rss_mib(self) -> float:
        total = 0
        for process in self.processes():
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        return total / 2**20

    def measure(self, seconds: float, during=lambda: None) -> tuple[float, float]:
        """(cores busy on average, peak RSS in MiB) while `during` runs, or for `seconds`."""
        before, started, peak = self.cpu_seconds(), time.monotonic(), 0.0
        worker = threading.Thread(target=during)
        worker.start()
        while worker.is_alive() or time.monotonic() - started < seconds:
            peak = max(peak, self.rss_mib())
            worker.join(2)
        after = self.cpu_seconds()
        busy = sum(max(0.0, after[pid] - before.get(pid, 0.0)) for pid in after)
        return busy / (time.monotonic() - started), peak


def publish_at(kafka: KafkaResource, rate: float, seconds: float, sent: dict[str, float]) -> float:
    """Publish synthetic events at `rate` for `seconds`, each stamped as it is sent; the send time of
    each charge's first version into `sent`. Returns the rate achieved."""
    messages = synthetic_messages(int(rate * seconds), seed=int(rate))
    producer = kafka.producer(linger_ms=5)
    started = time.time()
    for i, (key, value, headers) in enumerate(messages):
        if (pause := started + i / rate - time.time()) > 0:
            time.sleep(pause)
        now = time.time()
        stamped = [(k, str(int(now * 1000)).encode() if k == HEADER_EVENT_TIME else v) for k, v in headers]
        producer.send(kafka.topic, key=key, value=value, headers=stamped)
        charge_id = key.decode()
        if charge_id.startswith("ch_"):
            sent.setdefault(charge_id, now)
    producer.flush()
    producer.close()
    return len(messages) / (time.time() - started)


def watch_panels(postgres: PostgresResource, sent: dict[str, float], seen: dict[str, float], stop) -> None:
    """Poll the dashboard's view for the charges sent and not seen yet; record when each shows."""
    with postgres.connect(login=Login.READER, autocommit=True) as conn:
        while not stop.is_set():
            pending = [charge_id for charge_id in list(sent) if charge_id not in seen]
            if pending:
                found = [row[0] for row in conn.execute(SEEN, [pending]).fetchall()]
                now = time.time()
                seen.update({charge_id: now for charge_id in found})
            time.sleep(POLL_S)


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return at(0.5), at(0.95), ordered[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="100,1000", help="events per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of publishing at each rate")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    os.environ.setdefault("TXSTREAM_FOREX_BUNDLED_MAX_DAYS_PAST_END", str(DEMO_FOREX_DAYS_PAST_END))
    with throwaway_stack(topic=load_settings().topic) as (postgres, kafka):
        settings = load_settings()
        env = dagster_dev_env()
        dagster = DagsterDev(settings, free_port(), env)
        dagster.prepare_home()
        today = datetime.now(UTC).date()
        forex = PartitionBackfill("forex_rates", today, today, env, dagster.home)
        forex.start()
        forex.wait()
        try:
            dagster.start()
            assert dagster.process is not None
            started = time.monotonic()
            wait_until("the continuous stream to start", lambda: stream_running(postgres, kafka.topic), 300)
            stream_up_s = time.monotonic() - started
            wait_until(
                "dbt's first build of the marts",
                lambda: (
                    postgres.fetch_one("SELECT to_regclass('marts.fct_transactions_live')", login=Login.READER)[0]
                    is not None
                    and dagster.runs_in_progress() == 0
                ),
                600,
                dagster.raise_if_a_run_failed,
            )
            footprint = Footprint(dagster.process.pid, str(settings.data_dir))
            idle_cpu, idle_rss = footprint.measure(IDLE_S)
            print("setup                 dagster dev + continuous stream (local[2]) + embedded PostgreSQL and Kafka")
            print(f"stream started        {stream_up_s:>8.1f} s after dagster dev answered")
            print(f"idle                  {idle_cpu:>8.2f} cores busy, {idle_rss:,.0f} MiB resident")
            for rate in rates:
                run_at(rate, args.seconds, postgres, kafka, footprint)
        finally:
            stopping = time.monotonic()
            dagster.stop()
            print(f"Ctrl-C to all stopped {time.monotonic() - stopping:>8.1f} s")


def run_at(rate: float, seconds: float, postgres: PostgresResource, kafka: KafkaResource, footprint: Footprint):
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=watch_panels, args=(postgres, sent, seen, stop), daemon=True)
    watcher.start()
    since = datetime.now(UTC)
    achieved: list[float] = []

    def load() -> None:
        achieved.append(publish_at(kafka, rate, seconds, sent))
        wait_until("every charge to show on the panels", lambda: len(seen) >= len(sent), 300)

    cpu, rss = footprint.measure(0, during=load)
    stop.set()
    watcher.join()
    count, (p50, p95, _), worst = postgres.fetch_one(LATENCIES, [since])
    panel_p50, panel_p95, panel_max = percentiles([seen[c] - sent[c] for c in sent])
    print(f"--- {achieved[0]:,.0f} events/s for {seconds:.0f} s")
    print(f"event → raw           p50 {p50:6.2f} s   p95 {p95:6.2f} s   max {worst:6.2f} s   ({count:,} rows)")
    print(
        f"event → panels        p50 {panel_p50:6.2f} s   p95 {panel_p95:6.2f} s   max {panel_max:6.2f} s   "
        f"({len(sent):,} charges)"
    )
    print(f"under load            {cpu:>8.2f} cores busy, {rss:,.0f} MiB resident (peak)")


if __name__ == "__main__":
    main()
