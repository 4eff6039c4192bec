"""What the job tells the world: Dagster Pipes when launched by Dagster, stdout otherwise."""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter

from dagster_pipes import PipesContext, PipesEnvVarParamsLoader, open_dagster_pipes

ASSET_KEY = "raw_transactions"


COUNTS = ("consumed", "inserted", "updated", "duplicates", "quarantined")


class JobReporter:
    """`log_every_s`: a query that runs for days (the continuous stream, a batch a second) logs what its
    batches did at most that often, summed, rather than a line per batch in Dagster's event log."""

    def __init__(self, topic: str, log_every_s: float = 0):
        self.topic = topic
        self.log_every_s = log_every_s
        self.totals: Counter = Counter()
        self.unlogged: Counter = Counter()
        self.first_unlogged_batch: int | None = None
        self.logged_at = float("-inf")
        self.batch_seconds: list[float] = []
        self.next_offsets: dict[int, int] = {}
        self.pipes: PipesContext | None = None

    def __enter__(self) -> JobReporter:
        if PipesEnvVarParamsLoader().is_dagster_pipes_process():
            self.pipes = open_dagster_pipes()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.pipes is not None:
            self.pipes.close()

    def log(self, message: str) -> None:
        if self.pipes is not None:
            self.pipes.log.info(message)
        print(f"[txstream-stream] {message}", flush=True)

    def fail(self, message: str) -> None:
        if self.pipes is not None:
            self.pipes.log.error(message)
        print(f"[txstream-stream] ERROR {message}", file=sys.stderr, flush=True)

    def batch_committed(self, batch_id: int, result) -> None:
        self.totals.update(
            consumed=result.consumed,
            inserted=result.inserted,
            updated=result.updated,
            duplicates=result.duplicates,
            quarantined=result.quarantined,
            batches=1,
            replayed_batches=int(result.replayed),
        )
        self.batch_seconds.append(result.seconds)
        for r in result.offset_ranges:
            self.next_offsets[r["partition"]] = max(self.next_offsets.get(r["partition"], 0), r["to"] + 1)
        self.unlogged.update({name: getattr(result, name) for name in COUNTS})
        if self.first_unlogged_batch is None:
            self.first_unlogged_batch = batch_id
        if time.monotonic() - self.logged_at < self.log_every_s:
            return
        if self.first_unlogged_batch == batch_id:
            self.log(f"batch {batch_id}: {result.as_log_line()}")
        else:
            counts = " ".join(f"{name}={self.unlogged[name]}" for name in COUNTS)
            self.log(f"batches {self.first_unlogged_batch}–{batch_id}: {counts}")
        self.unlogged.clear()
        self.first_unlogged_batch = None
        self.logged_at = time.monotonic()

    def summary(self, seconds: float) -> dict:
        totals = {
            name: self.totals[name]
            for name in ("consumed", "inserted", "updated", "duplicates", "quarantined", "batches", "replayed_batches")
        }
        return {
            **totals,
            "seconds": round(seconds, 2),
            "batch_seconds_p50": round(statistics.median(self.batch_seconds), 3) if self.batch_seconds else 0.0,
            "batch_seconds_max": round(max(self.batch_seconds), 3) if self.batch_seconds else 0.0,
            "next_offsets": {str(p): o for p, o in sorted(self.next_offsets.items())},
        }

    def finish(self, seconds: float) -> None:
        summary = self.summary(seconds)
        self.log(f"done: {summary}")
        if self.pipes is not None and self.pipes.is_asset_step:
            # Offsets before and after are added by the Dagster asset, from PostgreSQL. The continuous
            # stream runs in an op, not an asset: the stream sensor reports what it lands as it lands.
            self.pipes.report_asset_materialization(
                asset_key=ASSET_KEY, metadata={k: v for k, v in summary.items() if k != "next_offsets"}
            )
