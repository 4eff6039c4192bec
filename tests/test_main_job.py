"""The README's first command, `txstream demo`, on a machine of its own: stack, Dagster, sensor, automation."""

from __future__ import annotations

import os
import subprocess

import dagster as dg
import pytest

from txstream_dagster.dev.processes import free_port

pytestmark = pytest.mark.slow


def test_the_main_job_streams_synthetic_charges_end_to_end_and_prints_a_summary(tmp_path):
    env = {
        **os.environ,
        "TXSTREAM_DATA_DIR": str(tmp_path / "data"),
        "TXSTREAM_LOCAL_POSTGRES_PORT": str(free_port()),
        "TXSTREAM_LOCAL_KAFKA_PORT": str(free_port()),
        "TXSTREAM_LOCAL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "COLUMNS": "200",
    }
    try:
        demo = subprocess.run(
            [
                "txstream",
                "demo",
                "--no-ui",
                "--charges",
                "1500",
                "--days",
                "7",
                "--seed",
                "5",
                "--port",
                str(free_port()),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        summary = demo.stdout
        assert "every event landed in raw.transactions" in summary
        assert "quarantined       5 in raw.quarantined_events" in summary
        assert "charges in marts  1,500 in marts.fct_transactions" in summary
        assert "GBP" in summary and "£" in summary
        # Fees, payouts (charges of the week's first days are paid out by now) and FX slippage.
        assert "fees GBP" in summary and "net after fees GBP" in summary
        assert "each the sum of what it paid out (fct_payouts)" in summary and "not all reconciled" not in summary
        assert "to Stripe's rate (fct_fx_slippage)" in summary
        # Every whole day of the window, reconciled with the generator's ledger through a local Stripe API.
        assert "reconciled        7 days with what the source holds" in summary
        assert "every one landed or quarantined" in summary

        # The runs were the sensor's and the automation's, and Dagster recorded them.
        with dg.DagsterInstance.from_config(str(tmp_path / "data" / "dagster")) as instance:
            stream_runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": "stream_lag_sensor"}))
            dbt_runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/from_automation_condition": "true"}))
            # One continuous stream, never restarted, stopped with dagster dev: canceled, not failed.
            assert [(r.job_name, r.status) for r in stream_runs] == [
                ("stream_continuous", dg.DagsterRunStatus.CANCELED)
            ]
            assert not instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
            assert any(r.status == dg.DagsterRunStatus.SUCCESS for r in dbt_runs)
            fact = instance.get_latest_materialization_event(dg.AssetKey(["marts", "fct_transactions"]))
            assert fact is not None
            reconciled = instance.get_latest_materialization_event(dg.AssetKey("stripe_reconciliation"))
            assert reconciled is not None and reconciled.asset_materialization.metadata["complete"].value is True
            report = instance.get_latest_materialization_event(dg.AssetKey("daily_kpi_report"))
            assert report is not None and report.asset_materialization.metadata["charges"].value == 1_500
    finally:
        subprocess.run(["txstream", "down"], env=env, capture_output=True, timeout=120)
