"""The Dagster UI in a real browser: the asset graph shows the pipeline from the Stripe topic to the
marts and the report.

Debian's Chromium (apt `chromium`, scripts/install-system-deps), driven headless by
Playwright; no browser is ever downloaded. The UI is `dagster-webserver` on the
repository's workspace.yaml, with a temporary DAGSTER_HOME holding the repository's
dagster.yaml, against the session's embedded stack. Not `dagster dev`: its daemon
would run the sensors that are on by default and launch dbt and Spark runs against
the warehouse other tests are using; the webserver alone serves the same UI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from txstream_dagster.dev.processes import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVE_TIMEOUT_S = 120
# The webserver's code-server child can take ~50 s to go after SIGINT (measured on these machines).
STOP_TIMEOUT_S = 75
# Wide enough that the graph draws full nodes with whole names, not abbreviated ones.
VIEWPORT = {"width": 2560, "height": 1600}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_process_group(process: subprocess.Popen, timeout_s: float) -> float:
    """SIGINT to the whole group, as Ctrl-C would; SIGKILL whatever is left after `timeout_s`."""
    pgid = process.pid  # start_new_session: the webserver leads its own group
    started = time.monotonic()
    os.killpg(pgid, signal.SIGINT)
    while group_alive(pgid) and time.monotonic() - started < timeout_s:
        process.poll()  # reap the leader, or its zombie keeps the group "alive"
        time.sleep(0.5)
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=10)
    return time.monotonic() - started


def wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dagster-webserver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise AssertionError(f"dagster-webserver did not serve within {SERVE_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def dagster_ui(local_stack, tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    log = home / "webserver.log"
    webserver = Path(sys.executable).parent / "dagster-webserver"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env={**os.environ, "DAGSTER_HOME": str(home)},  # the session's TXSTREAM_* point at the embedded stack
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, log)
        yield url
    finally:
        stopped_in = stop_process_group(process, STOP_TIMEOUT_S)
        assert not group_alive(process.pid), "a dagster-webserver process outlived the test"
        print(f"dagster-webserver and its code server stopped in {stopped_in:.0f} s")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run scripts/install-system-deps (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def asset_graph(browser, url: str, asset_path: str, scope: str):
    """The asset's lineage tab: every asset `scope` (upstream or downstream) of it, at any depth."""
    page = browser.new_page(viewport=VIEWPORT)
    # The code location loads in the background: the first visit may wait for it.
    page.goto(f"{url}/assets/{asset_path}?view=lineage&lineageScope={scope}&lineageDepth=99", timeout=90_000)
    return page


def test_graph_upstream_of_the_fact_shows_the_stripe_topic_the_stream_sink_and_forex(dagster_ui, browser):
    page = asset_graph(browser, dagster_ui, "marts/fct_transactions", "upstream")
    try:
        for asset in (
            "stripe_events_topic",
            "raw_transactions",
            "forex_rates",
            "stg_stripe__charges",
            "stg_forex__rates",
            "fct_transactions",
        ):
            page.get_by_text(asset, exact=True).first.wait_for(state="visible", timeout=90_000)
        # Groups are the stages: one box per folder of txstream_dagster/defs and per dbt layer.
        for group in ("stripe_source", "stream", "forex", "staging", "marts"):
            assert page.get_by_text(group, exact=True).count() >= 1, f"no {group} group in the graph"
    finally:
        page.close()


def test_graph_downstream_of_the_fact_shows_the_marts_monitoring_and_the_kpi_report(dagster_ui, browser):
    page = asset_graph(browser, dagster_ui, "marts/fct_transactions", "downstream")
    try:
        for asset in ("fct_transactions", "agg_daily_revenue", "fx_rate_missing_by_currency", "daily_kpi_report"):
            page.get_by_text(asset, exact=True).first.wait_for(state="visible", timeout=90_000)
    finally:
        page.close()
