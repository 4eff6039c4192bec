"""`txstream demo` stops at the first failed Dagster run and names it, instead of waiting out its timeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from txstream_dagster.dev.dagster_dev import DagsterDev, StackFailed
from txstream_dagster.settings import Settings


@dg.asset
def raw_transactions_that_fail() -> None:
    raise RuntimeError("PostgreSQL refused the connection: is it up?")


@dg.asset
def forex_rates_that_work() -> None:
    return None


def test_a_failed_run_ends_the_wait_with_its_error_and_where_its_logs_are(tmp_path):
    dev = DagsterDev(Settings(data_dir=tmp_path), port=3999, env={})
    dev.home.mkdir(parents=True)
    dev.started_at = datetime.now(UTC) - timedelta(seconds=1)
    with dg.DagsterInstance.from_config(str(dev.home)) as instance:
        assert dg.materialize([forex_rates_that_work], instance=instance).success
        dev.raise_if_a_run_failed()  # a successful run is no reason to stop

        failed = dg.materialize([raw_transactions_that_fail], instance=instance, raise_on_error=False)
    assert not failed.success

    with pytest.raises(StackFailed) as raised:
        dev.raise_if_a_run_failed()
    message = str(raised.value)
    assert "PostgreSQL refused the connection: is it up?" in message
    assert f"http://127.0.0.1:3999/runs/{failed.run_id}" in message
    assert "raw_transactions_that_fail" in message


def test_runs_that_failed_before_this_demo_started_are_not_its_concern(tmp_path):
    dev = DagsterDev(Settings(data_dir=tmp_path), port=3999, env={})
    dev.home.mkdir(parents=True)
    with dg.DagsterInstance.from_config(str(dev.home)) as instance:
        dg.materialize([raw_transactions_that_fail], instance=instance, raise_on_error=False)
    dev.started_at = datetime.now(UTC) + timedelta(seconds=1)
    dev.raise_if_a_run_failed()
