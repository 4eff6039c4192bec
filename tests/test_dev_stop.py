"""`make dev` (`txstream dev`): the continuous stream runs by itself, Ctrl-C stops everything within 10 s,
and a restart lands what arrived meanwhile, once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time

import dagster as dg
import psutil
import pytest

from stream_helpers import assert_every_message_accounted_for_once, landed_ids, publish_charges, wait_for
from txstream_dagster.defs.stream.offsets import stream_running
from txstream_dagster.dev.processes import free_port
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.settings import Settings

pytestmark = pytest.mark.slow


def start_dev(topic: str) -> subprocess.Popen:
    """`txstream dev` as a terminal runs it: Ctrl-C reaches its process group (dagster dev has its own)."""
    process = subprocess.Popen(
        ["txstream", "dev", "--port", str(free_port())],
        env={**os.environ, "TXSTREAM_TOPIC": topic, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    # Read all along: dagster dev writes to the same pipe, and a full pipe would block its processes.
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    OUTPUT[process.pid] = (reader, lines)
    return process


OUTPUT: dict[int, tuple[threading.Thread, list[str]]] = {}


def everything_started_by(process: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(process.pid).children(recursive=True)


def kill_everything_started_by(process: subprocess.Popen) -> None:
    """After a failure: no `dagster dev` or stream of this test may go on loading the machine for the next tests."""
    started = everything_started_by(process) if process.poll() is None else []
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    for child in started:
        with contextlib.suppress(psutil.Error):
            child.kill()


def ctrl_c(process: subprocess.Popen) -> tuple[float, str]:
    """Ctrl-C; the seconds until `txstream dev` and every process it started have ended, and its output."""
    started = everything_started_by(process)
    assert any("java" in " ".join(p.cmdline()) for p in started), "no Spark driver was running"
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    # Waits for the processes, not for the end of the output: a process still holding the pipe is
    # then named by the wait below instead of hanging the read.
    process.wait(timeout=60)
    wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started), 60, "the end")
    seconds = time.monotonic() - sent
    reader, lines = OUTPUT.pop(process.pid)
    reader.join(timeout=30)
    return seconds, "".join(lines)


def test_ctrl_c_stops_every_process_within_10_s_and_a_restart_lands_what_came_meanwhile_once(
    clean_warehouse: PostgresResource, kafka: KafkaResource, isolated_settings: Settings
):
    dev = start_dev(kafka.topic)
    try:
        # Nobody asks for a run: the stream sensor starts the continuous stream by itself.
        wait_for(lambda: stream_running(clean_warehouse, kafka.topic), 300, "the continuous stream to start")
        first = publish_charges(kafka, 300, prefix="ch_dev_a_")
        wait_for(lambda: len(landed_ids(clean_warehouse)) == 300, 120, "the stream to land the first charges")
        seconds, output = ctrl_c(dev)
    finally:
        kill_everything_started_by(dev)
    assert seconds <= 10, output
    assert "stopped" in output

    with dg.DagsterInstance.from_config(str(isolated_settings.data_dir / "dagster")) as instance:
        [stream_run] = instance.get_runs(filters=dg.RunsFilter(job_name="stream_continuous"))
        assert stream_run.status == dg.DagsterRunStatus.CANCELED  # a Ctrl-C, not a failure (no alert)

    meanwhile = publish_charges(kafka, 200, prefix="ch_dev_b_")  # while nothing runs
    dev = start_dev(kafka.topic)
    try:
        wait_for(lambda: len(landed_ids(clean_warehouse)) == 500, 300, "the restarted stream to land the rest")
        ctrl_c(dev)
    finally:
        kill_everything_started_by(dev)
    assert set(landed_ids(clean_warehouse)) == first | meanwhile
    assert_every_message_accounted_for_once(clean_warehouse, 500)
