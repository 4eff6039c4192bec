"""Run every benchmark and write its latest figures into bench/RESULTS.md.

    python bench/run_all.py [name ...]        # e.g. python bench/run_all.py stream_throughput

Each benchmark's printed figures replace the block between its markers
(`<!-- figures:NAME -->` … `<!-- /figures:NAME -->`) in RESULTS.md, under the
command that produced them; the prose around the blocks is kept.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"

# name → arguments after `python bench/<name>.py`
BENCHES: dict[str, list[str]] = {
    "kafka_start": [],
    "producer_throughput": [],
    "stream_throughput": [],
    "stream_latency": [],
    "realtime_latency": [],
    "dbt_incremental": [],
    "forex_backfill": [],
    "soak": [],
    "make_run": [],
    "cli_help": [],
}


def block(name: str, command: str, output: str, code: int) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    status = "" if code == 0 else f" — exited {code}"
    return (
        f"<!-- figures:{name} -->\nLast run {when} ({machine}){status}: `{command}`\n\n"
        f"```text\n{output.strip()}\n```\n<!-- /figures:{name} -->"
    )


def main(names: list[str]) -> int:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    failed = 0
    for name in names or list(BENCHES):
        command = ["python", f"bench/{name}.py", *BENCHES[name]]
        print(f"== {' '.join(command)}", flush=True)
        run = subprocess.run([sys.executable, *command[1:]], cwd=BENCH.parent, capture_output=True, text=True)
        figures = "\n".join(line for line in run.stdout.splitlines() if line.strip())
        print(figures)
        failed += run.returncode != 0
        new = block(name, " ".join(command), figures or run.stderr[-2000:], run.returncode)
        pattern = re.compile(rf"<!-- figures:{name} -->.*?<!-- /figures:{name} -->", re.DOTALL)
        if pattern.search(text):
            text = pattern.sub(lambda _, replacement=new: replacement, text)
        else:
            text = f"{text.rstrip()}\n\n## {name}\n\n{new}\n"
        RESULTS.write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
