"""`dagster dev` on this machine, as `txstream demo` and `txstream dev` run it: started in a process
group of its own, waited on, and stopped whole.

Ctrl-C must leave nothing behind, quickly: `dagster dev`'s code servers linger up to ~50 s after
SIGINT, and a run's Spark driver as long as its batch takes. `stop()` gives the whole group (webserver,
daemon, code servers, run workers, spark-submit and its JVM) `STOP_GRACE_S` to end after SIGINT, kills
what is left, and records the runs it cut short as canceled, so the next start finds no run "in
progress" that is not. The stream resumes from the offsets PostgreSQL committed: a batch cut short is
read again, and lands once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil
import requests

from txstream_dagster.paths import REPO_ROOT
from txstream_dagster.settings import Settings

STOP_GRACE_S = 7.0
# The continuous stream never ends by itself: "every run has finished" is said of the others.
LONG_RUNNING_JOBS = ("stream_continuous",)


class StackFailed(RuntimeError):
    """A step of the local run did not happen: what, and where to look."""


def wait_until(
    what: str, condition: Callable[[], bool], timeout_s: float, on_tick: Callable[[], None] = lambda: None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        on_tick()
        if time.monotonic() > deadline:
            raise StackFailed(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(2)


def dagster_dev_env() -> dict[str, str]:
    """This environment, with this venv's Python for Spark's workers and its commands on PATH."""
    return {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class DagsterDev:
    """`dagster dev` in its own process group: webserver, daemon (sensors, schedules, automation)."""

    def __init__(self, settings: Settings, port: int, env: dict[str, str]):
        self.home = settings.data_dir / "dagster"
        self.port = port
        self.env = env
        self.log_path = self.home / "dagster-dev.log"
        self.process: subprocess.Popen | None = None
        self.started_at: datetime | None = None
        self.prepared = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare_home(self) -> None:
        """DAGSTER_HOME with the repository's instance settings (run queue, run monitoring), and no run
        left "in progress" by a dagster dev that did not stop (a power cut, a kill -9)."""
        self.prepared = True
        if (self.home / "dagster.yaml").exists():
            self.cancel_unfinished_runs("dagster dev was not running")
            return
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / "dagster.yaml", self.home / "dagster.yaml")

    def start(self) -> None:
        """Start dagster dev (after `prepare_home`, which the caller may have run earlier) and wait for its UI."""
        self.started_at = datetime.now(UTC)
        if not self.prepared:
            self.prepare_home()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "dagster"),
                    "dev",
                    "-w",
                    str(REPO_ROOT / "workspace.yaml"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                ],
                cwd=REPO_ROOT,
                env={**self.env, "DAGSTER_HOME": str(self.home)},
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        wait_until(f"the Dagster UI on {self.url} (log: {self.log_path})", self.answering, 180, self._still_running)

    def answering(self) -> bool:
        try:
            return requests.get(f"{self.url}/server_info", timeout=2).ok
        except requests.RequestException:
            return False

    def _still_running(self) -> None:
        assert self.process is not None  # start() sets it before waiting
        if self.process.poll() is not None:
            raise StackFailed(f"dagster dev exited with code {self.process.returncode}; see {self.log_path}")

    def raise_if_a_run_failed(self) -> None:
        """A failed stream or dbt run ends the wait at once, named with its error, not at the timeout."""
        import dagster as dg  # ~1 s to import: only once the demo is waiting on runs

        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            records = instance.get_run_records(
                dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_after=self.started_at), limit=1
            )
            if not records:
                return
            run = records[0].dagster_run
            failures = [
                f"{event.step_key}: {_root_cause(error)}"
                for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
                if (error := _step_error(event))
            ]
        raise StackFailed(
            f"Dagster run {run.run_id} ({run.job_name}) failed in {'; '.join(failures) or 'no step (see its logs)'}. "
            f"Its logs: {self.url}/runs/{run.run_id}"
        )

    def _unfinished_runs(self, created_after: datetime | None = None, canceling: bool = False) -> list:
        import dagster as dg

        from txstream_dagster.dagster_runs import UNFINISHED

        statuses = [*UNFINISHED, dg.DagsterRunStatus.CANCELING] if canceling else UNFINISHED
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return list(instance.get_runs(dg.RunsFilter(statuses=statuses, created_after=created_after)))

    def runs_in_progress(self) -> int:
        """This session's runs queued or running, but for the continuous stream's, which runs until stopped."""
        return sum(run.job_name not in LONG_RUNNING_JOBS for run in self._unfinished_runs(self.started_at))

    def cancel_unfinished_runs(self, why: str, *, canceling: bool = False) -> int:
        """Record the runs no process carries on any more as canceled (what a run's own Ctrl-C would say)."""
        import dagster as dg

        runs = self._unfinished_runs(canceling=canceling)
        if runs:
            with dg.DagsterInstance.from_config(str(self.home)) as instance:
                for run in runs:
                    instance.report_run_canceled(run, message=f"Canceled by txstream: {why}.")
        return len(runs)

    def _mark_runs_canceling(self) -> None:
        """A run interrupted while CANCELING ends canceled, not failed (so no failure alert for a Ctrl-C)."""
        import dagster as dg

        runs = self._unfinished_runs()
        if runs:
            with dg.DagsterInstance.from_config(str(self.home)) as instance:
                for run in runs:
                    instance.report_run_canceling(run, message="dagster dev is stopping (Ctrl-C)")

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGINT to every process dagster dev started, SIGKILL to what is left after `grace_s`."""
        if self.process is None:
            return
        pgid = self.process.pid
        # PySpark's worker daemon puts itself in a process group of its own: the group's signals miss it,
        # so every descendant is noted now, while they can still be found from dagster dev.
        descendants = _descendants(pgid)
        self._mark_runs_canceling()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGINT)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            self.process.poll()  # reaps dagster dev itself, the group's leader, once it has exited
            if not _group_alive(pgid):
                break
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        for process in descendants:
            with contextlib.suppress(psutil.Error):
                process.kill()
        self.process.wait()
        self.cancel_unfinished_runs("dagster dev was stopped", canceling=True)


def _step_error(entry):
    """The error of a STEP_FAILURE log entry (which always carries its Dagster event)."""
    assert entry.dagster_event is not None
    return entry.dagster_event.step_failure_data.error


def _root_cause(error) -> str:
    """The innermost error of a Dagster SerializableErrorInfo: what went wrong, not where Dagster caught it."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
