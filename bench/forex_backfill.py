"""Forex backfill: every date since the partitions start, offline, in one run.

    .venv/bin/python bench/forex_backfill.py [--start 1999-01-04] [--end <last date of the bundled ECB file>]

Starts a throwaway embedded PostgreSQL, then prints the time of
1. a single-run backfill of forex_rates from the bundled ECB file (the offline default),
2. the same backfill replayed (every row unchanged, nothing written),
3. one month in `auto` mode without internet: the currency-api is tried, fails,
   and the run falls back to the bundled file (the dead host is asked once per run).
"""

from __future__ import annotations

import argparse
import time
import warnings
from datetime import date

import dagster as dg

from throwaway_stack import throwaway_stack
from txstream_dagster.defs.forex.assets import FOREX_PARTITIONS_START, forex_rates
from txstream_dagster.defs.forex.resources import ForexApiResource
from txstream_dagster.defs.forex.sources import load_ecb_history
from txstream_dagster.resources import PostgresResource

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def backfill(postgres: PostgresResource, forex: ForexApiResource, first: date, last: date) -> tuple[float, dict]:
    started = time.perf_counter()
    result = dg.materialize(
        [forex_rates],
        resources={"forex": forex, "postgres": postgres},
        tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()},
    )
    elapsed = time.perf_counter() - started
    [materialization, *_] = result.asset_materializations_for_node("forex_rates")
    return elapsed, {key: value.value for key, value in materialization.metadata.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date.fromisoformat(FOREX_PARTITIONS_START))
    parser.add_argument("--end", type=date.fromisoformat, default=None)
    args = parser.parse_args()
    end = args.end or load_ecb_history().dates[-1]
    days = (end - args.start).days + 1
    warnings.filterwarnings("ignore", category=dg.BetaWarning)

    with throwaway_stack() as (postgres, _):
        ecb = ForexApiResource(source="ecb_bundled")
        elapsed, metadata = backfill(postgres, ecb, args.start, end)
        rows = postgres.fetch_one("SELECT count(*) FROM raw.forex_rates")[0]
        print(
            f"ecb_bundled backfill {args.start}…{end}: {days} dates, {rows} rows in {elapsed:.1f} s "
            f"({days / elapsed:.0f} dates/s, {rows / elapsed:.0f} rows/s)"
        )

        elapsed, metadata = backfill(postgres, ecb, args.start, end)
        print(
            f"replay of the same range: {elapsed:.1f} s, rows written {metadata['rows_written']}, "
            f"unchanged {metadata['rows_unchanged']}"
        )

        month_start = date(end.year, end.month, 1)
        elapsed, metadata = backfill(postgres, ForexApiResource(), month_start, end)
        print(
            f"auto without internet, {month_start}…{end} ({(end - month_start).days + 1} dates): "
            f"{elapsed:.1f} s, source {metadata['source']}"
        )


if __name__ == "__main__":
    main()
