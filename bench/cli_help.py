"""How long `txstream <command> --help` takes, for every command, with nothing running. Goal: under 1 s each.

    python bench/cli_help.py [--repeat 5]

Each figure is the wall time of the whole process (interpreter start included), the
median of `--repeat` runs, against a data dir that holds nothing and ports nothing
listens on. Baseline in the same run: `python -c pass`, the interpreter alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from txstream_dagster.cli import COMMANDS

TXSTREAM = str(Path(sys.executable).parent / "txstream")


def median_seconds(command: list[str], env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="txstream-bench-") as data_dir:
        env = {
            **os.environ,
            "TXSTREAM_DATA_DIR": data_dir,
            "TXSTREAM_LOCAL_POSTGRES_PORT": "1",
            "TXSTREAM_LOCAL_KAFKA_PORT": "2",
        }
        baseline = median_seconds([sys.executable, "-c", "pass"], env, args.repeat)
        print(f"{'python -c pass (baseline)':32} {baseline:6.2f} s")
        slowest = 0.0
        for command in [[], *([name] for name in COMMANDS), ["topic", "create"], ["stream", "reset"]]:
            seconds = median_seconds([TXSTREAM, *command, "--help"], env, args.repeat)
            slowest = max(slowest, seconds)
            print(f"{' '.join(['txstream', *command, '--help']):32} {seconds:6.2f} s")
        print(f"{'slowest':32} {slowest:6.2f} s  (goal < 1 s: {'met' if slowest < 1 else 'MISSED'})")


if __name__ == "__main__":
    main()
