"""`txstream demo`: the whole product on this machine, end to end, in one command.

Start the embedded stack and `dagster dev`; publish a few days of synthetic
Stripe charges (and a handful of malformed messages); backfill forex for those
days; let the stream sensor's Spark runs land the events and declarative
automation build the dbt models; print a summary; keep the Dagster UI up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psutil
from psycopg import sql
from rich.console import Console
from rich.table import Table

from txstream_dagster.currencies import currency
from txstream_dagster.db.logins import Login
from txstream_dagster.db.migrate import upgrade_warehouse
from txstream_dagster.defs.stripe_source.synthetic_ledger import synthetic_ledger
from txstream_dagster.defs.stripe_source.topic_feeds import FeedSummary, publish_synthetic
from txstream_dagster.dev.dagster_dev import DagsterDev, StackFailed, dagster_dev_env, wait_until
from txstream_dagster.dev.stack import LocalStack
from txstream_dagster.paths import REPO_ROOT
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.resources.build import event_log, login_passwords, report_folder, stripe_account, warehouse
from txstream_dagster.settings import Settings
from txstream_spark.rows import one_row

# Messages no Stripe object looks like: the stream must quarantine them, with a reason, and go on.
MALFORMED_MESSAGES = [
    b"{not json",
    b"[1, 2, 3]",
    b"\xff\xfe not utf-8",
    b'{"object": "invoice", "id": "in_demo", "amount": 100, "currency": "gbp"}',
    b'{"object": "charge", "id": "ch_demo_bad", "amount": "12.50", "currency": "gbp", "created": 1700000000}',
]
# Offline, the bundled ECB file ends a few weeks before today: the demo lets its last
# rates stand for recent dates (the forex_rates_are_current check says so).
DEMO_FOREX_DAYS_PAST_END = 60


@dataclass
class DemoResult:
    produced: FeedSummary
    malformed: int
    landed: int
    quarantined: int
    charges: int
    fx_missing: int
    revenue: list[tuple]
    payouts: list[tuple]  # upcoming or not, count, GBP, all reconciled
    slippage: tuple  # charges converted, GBP at the reference rate, GBP as settled, average slippage %
    reconciled: tuple[int, int, int]  # days, objects the source holds, of which missing
    seconds: float


class PartitionBackfill:
    """`dagster asset materialize` of a daily-partitioned asset over the window: one run (the asset's
    backfill policy), recorded in the demo's Dagster instance, in a process of its own."""

    def __init__(self, asset: str, first: date, last: date, env: dict[str, str], home: Path):
        self.asset = asset
        self.first, self.last = first, last
        self.env, self.home = env, home
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster"),
                "asset",
                "materialize",
                "-m",
                "txstream_dagster.definitions",
                "--select",
                self.asset,
                "--partition-range",
                f"{self.first.isoformat()}...{self.last.isoformat()}",
            ],
            cwd=REPO_ROOT,
            env={**self.env, "DAGSTER_HOME": str(self.home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def wait(self) -> None:
        assert self.process is not None  # start() came first
        _, errors = self.process.communicate()
        if self.process.returncode != 0:
            raise StackFailed(f"the {self.asset} backfill {self.first} … {self.last} failed:\n{errors[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)


def publish_malformed(kafka: KafkaResource) -> int:
    producer = kafka.producer()
    for value in MALFORMED_MESSAGES:
        producer.send(kafka.topic, key=b"demo-malformed", value=value).get(timeout=30)
    producer.close()
    return len(MALFORMED_MESSAGES)


def materialize_here(home: Path, assets: list, resources: dict, what: str, tags: dict[str, str] | None = None) -> None:
    """Materialize `assets` in this process (no code location to load), recorded in the demo's Dagster
    instance as one run, so the UI shows it like any other."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize(assets, instance=instance, resources=resources, tags=tags, raise_on_error=False)
    if not result.success:
        raise StackFailed(f"the {what} run failed: see run {result.run_id} in the UI")


def reconcile(settings: Settings, postgres: PostgresResource, home: Path, first: date, last: date) -> None:
    """`stripe_reconciliation` over the days, against the generator's ledger behind a local Stripe API."""
    from txstream_dagster.defs.reconciliation.assets import stripe_reconciliation

    materialize_here(
        home,
        [stripe_reconciliation],
        {"postgres": postgres, "stripe": stripe_account(settings)},
        f"stripe_reconciliation {first} … {last}",
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
    )


def render_kpi_report(settings: Settings, postgres: PostgresResource, home: Path) -> None:
    """`daily_kpi_report` now, rather than at its 07:00 UTC tick: the demo's marts are complete."""
    from txstream_dagster.defs.reporting.assets import daily_kpi_report

    materialize_here(
        home, [daily_kpi_report], {"postgres": postgres, "reports": report_folder(settings)}, "daily_kpi_report"
    )


def stream_caught_up(postgres: PostgresResource, kafka: KafkaResource) -> bool:
    committed = one_row(
        postgres.fetch_one(
            "SELECT coalesce(sum(next_offset), 0) FROM ops.stream_offsets WHERE kafka_topic = %s", [kafka.topic]
        )
    )[0]
    return committed >= sum(kafka.end_offsets().values())


# What the marts must hold before the summary is read: one row per landed object of each kind.
MARTS_OF_OBJECT_TYPES = (
    ("charge", "fct_transactions"),
    ("balance_transaction", "fct_balance_transactions"),
    ("payout", "fct_payouts"),
)
MART_COUNT = sql.SQL("SELECT (SELECT count(*) FROM raw.transactions WHERE object_type = %s), (SELECT count(*) FROM {})")


def marts_caught_up(postgres: PostgresResource) -> bool:
    marts = [f"marts.{mart}" for _, mart in MARTS_OF_OBJECT_TYPES] + ["marts.agg_daily_revenue"]
    with postgres.connect(login=Login.TRANSFORMER) as conn:
        if not one_row(
            conn.execute("SELECT bool_and(to_regclass(m) IS NOT NULL) FROM unnest(%s::text[]) m", [marts]).fetchone()
        )[0]:
            return False
        for object_type, mart in MARTS_OF_OBJECT_TYPES:
            landed, built = one_row(
                conn.execute(MART_COUNT.format(sql.Identifier("marts", mart)), [object_type]).fetchone()
            )
            if built != landed or (object_type == "charge" and landed == 0):
                return False
        # A balance transaction paid out lands again, naming its payout: the payouts must cover every one.
        # The daily aggregates (what the KPI report reads) are built after the facts, in the same run.
        paid_out, covered, aggregated, charges = one_row(
            conn.execute(
                "SELECT (SELECT count(*) FROM raw.transactions "
                "        WHERE object_type = 'balance_transaction' AND payout_id IS NOT NULL "
                "        AND payload->>'type' <> 'payout'), "
                "(SELECT coalesce(sum(covered_transaction_count), 0) FROM marts.fct_payouts), "
                "(SELECT coalesce(sum(charge_count), 0) FROM marts.agg_daily_revenue), "
                "(SELECT count(*) FROM marts.fct_transactions)"
            ).fetchone()
        )
        return paid_out == covered and aggregated == charges


def summarise(
    postgres: PostgresResource,
) -> tuple[int, int, int, int, list[tuple], list[tuple], tuple, tuple[int, int, int]]:
    landed, quarantined = one_row(
        postgres.fetch_one(
            "SELECT (SELECT count(*) FROM raw.transactions), (SELECT count(*) FROM raw.quarantined_events)"
        )
    )
    charges, fx_missing = one_row(
        postgres.fetch_one(
            "SELECT count(*), count(*) FILTER (WHERE fx_rate_missing) FROM marts.fct_transactions",
            login=Login.TRANSFORMER,
        )
    )
    # Fees of a charge: those of its balance transactions (its own, its refunds', its disputes').
    revenue = postgres.fetch_all(
        """SELECT t.currency_code, count(*) FILTER (WHERE t.is_successful),
                  sum(t.net_amount) FILTER (WHERE t.is_successful),
                  sum(t.net_amount_gbp) FILTER (WHERE t.is_successful), sum(f.fee_gbp)
           FROM marts.fct_transactions t
           LEFT JOIN (SELECT charge_id, sum(fee_gbp) AS fee_gbp FROM marts.fct_balance_transactions
                      WHERE charge_id IS NOT NULL GROUP BY 1) f ON f.charge_id = t.charge_id
           GROUP BY 1
           ORDER BY sum(t.net_amount_gbp) FILTER (WHERE t.is_successful) DESC NULLS LAST LIMIT 12""",
        login=Login.TRANSFORMER,  # reads raw and marts
    )
    payouts = postgres.fetch_all(
        """SELECT is_upcoming, count(*), sum(amount_gbp), bool_and(is_reconciled)
           FROM marts.fct_payouts GROUP BY 1 ORDER BY 1""",
        login=Login.TRANSFORMER,
    )
    slippage = one_row(
        postgres.fetch_one(
            """SELECT count(*), coalesce(sum(reference_amount_gbp), 0), coalesce(sum(settled_amount_gbp), 0),
                      avg(slippage_percent)
               FROM marts.fct_fx_slippage WHERE NOT fx_rate_missing""",
            login=Login.TRANSFORMER,
        )
    )
    reconciled = one_row(
        postgres.fetch_one(
            """SELECT count(DISTINCT day), coalesce(sum(stripe_count), 0), coalesce(sum(cardinality(missing_ids)), 0)
               FROM ops.reconciliation_results"""
        )
    )
    return landed, quarantined, charges, fx_missing, revenue, payouts, slippage, reconciled


def print_summary(console: Console, result: DemoResult) -> None:
    produced = result.produced
    console.rule("[bold]txstream demo: summary")
    console.print(
        f"events produced   {produced.messages:,} "
        f"({', '.join(f'{n:,} {t}' for t, n in sorted(produced.by_object_type.items()))}) "
        f"+ {result.malformed} malformed, seed {produced.seed}"
    )
    console.print(f"rows landed       {result.landed:,} in raw.transactions (one per Stripe object, latest version)")
    console.print(f"quarantined       {result.quarantined:,} in raw.quarantined_events, each with its reason")
    console.print(
        f"charges in marts  {result.charges:,} in marts.fct_transactions, "
        f"{result.fx_missing:,} without a GBP rate (fx_rate_missing)"
    )
    table = Table(title="Net revenue of successful charges and Stripe's fees, by currency", title_justify="left")
    for column in ("currency", "charges", "net amount", "net GBP", "fees GBP", "net after fees GBP"):
        table.add_column(column, justify="right" if column != "currency" else "left")
    for code, count, amount, gbp, fees_gbp in result.revenue:
        table.add_row(
            code.upper(),
            f"{count:,}",
            f"{amount:,.{currency(code).exponent}f}",
            *(
                "no rate" if value is None else f"£{value:,.2f}"
                for value in (gbp, fees_gbp, None if gbp is None or fees_gbp is None else gbp - fees_gbp)
            ),
        )
    console.print(table)
    for upcoming, count, gbp, reconciled in result.payouts:
        console.print(
            f"{'payouts upcoming' if upcoming else 'payouts paid':<18}{count:,} for £{gbp or 0:,.2f}, "
            + ("each the sum of what it paid out" if reconciled else "[red]not all reconciled[/red]")
            + " (fct_payouts)"
        )
    converted, reference_gbp, settled_gbp, average_percent = result.slippage
    if converted:
        console.print(
            f"FX slippage       {converted:,} charges converted: £{reference_gbp:,.2f} at the reference rate, "
            f"£{settled_gbp:,.2f} at Stripe's, £{reference_gbp - settled_gbp:,.2f} "
            f"({average_percent:.2f}% on average) to Stripe's rate (fct_fx_slippage)"
        )
    days, held, missing = result.reconciled
    console.print(
        f"reconciled        {days} days with what the source holds: {held:,} objects, "
        + (f"[red]{missing:,} never landed[/red]" if missing else "every one landed or quarantined")
        + " (stripe_reconciliation)"
    )
    console.print(f"time taken        {result.seconds:.0f} s")


def run_demo(
    settings: Settings, *, charges: int, days: int, seed: int, port: int, console: Console, serve: bool = True
) -> DemoResult:
    started = time.monotonic()
    env = dagster_dev_env()
    env.setdefault("TXSTREAM_FOREX_BUNDLED_MAX_DAYS_PAST_END", str(DEMO_FOREX_DAYS_PAST_END))

    with console.status("starting PostgreSQL and Kafka"):
        for line in LocalStack(settings).up():
            console.print(f"[green]✓[/green] {line}")
        postgres, kafka = warehouse(settings), event_log(settings)
        upgrade_warehouse(postgres, login_passwords(settings))
        kafka.ensure_topic()
    dagster = DagsterDev(settings, port, env)
    today = datetime.now(UTC).date()
    # The forex backfill (a Dagster run of its own, in the same instance) goes on while dagster dev
    # starts and the events are published: the three take about as long as the slowest alone.
    forex = PartitionBackfill("forex_rates", today - timedelta(days=days), today, env, dagster.home)
    try:
        with console.status(
            f"starting dagster dev (webserver + daemon) on {dagster.url}; publishing "
            f"{charges:,} synthetic charges over {days} days, with refunds and disputes"
        ):
            dagster.prepare_home()
            forex.start()
            with synthetic_ledger(postgres) as ledger:
                produced = publish_synthetic(kafka, seed=seed, count=charges, history_days=days, ledger=ledger)
            malformed = publish_malformed(kafka)
            console.print(f"[green]✓[/green] published {produced.messages:,} events + {malformed} malformed messages")
            dagster.start()
        console.print(f"[green]✓[/green] Dagster UI on {dagster.url}; the stream sensor and dbt automation are on")

        with console.status(f"backfilling forex_rates {forex.first} … {forex.last}"):
            forex.wait()
        console.print("[green]✓[/green] forex rates for every day of the window")

        def landing(status) -> None:
            dagster.raise_if_a_run_failed()
            landed = one_row(postgres.fetch_one("SELECT count(*) FROM raw.transactions"))[0]
            status.update(f"Spark: {landed:,} rows landed")

        with console.status("waiting for the stream sensor's Spark run to land every event") as status:
            wait_until(
                "the stream to land every event (is the stream_lag_sensor on?)",
                lambda: stream_caught_up(postgres, kafka),
                900,
                lambda: landing(status),
            )
        console.print("[green]✓[/green] every event landed in raw.transactions")
        # Every whole day against what the source holds, in a thread while dbt builds.
        first, last = today - timedelta(days=days), today - timedelta(days=1)
        reconciling = ThreadPoolExecutor(max_workers=1).submit(reconcile, settings, postgres, dagster.home, first, last)

        with console.status("waiting for declarative automation to build the dbt models"):
            wait_until(
                "dbt to build the marts (fct_transactions, fct_balance_transactions, fct_payouts, agg_daily_revenue)",
                lambda: marts_caught_up(postgres),
                900,
                dagster.raise_if_a_run_failed,
            )
        console.print(
            "[green]✓[/green] dbt models built: staging → dimensions and facts (charges, balance transactions, "
            "payouts, FX slippage) → daily aggregates"
        )
        with console.status(f"reconciling {first} … {last} with what the source holds"):
            reconciling.result()
        console.print("[green]✓[/green] every whole day reconciled with what the source holds (stripe_reconciliation)")
        with console.status("rendering the daily KPI report"):
            render_kpi_report(settings, postgres, dagster.home)
        console.print(f"[green]✓[/green] daily_kpi_report rendered in {report_folder(settings).path}")

        result = DemoResult(produced, malformed, *summarise(postgres), seconds=time.monotonic() - started)
        print_summary(console, result)
        if serve:
            console.print(f"\nDagster UI: [bold]{dagster.url}[/bold] (runs, asset graph, checks). Ctrl-C stops it.")
            assert dagster.process is not None  # dagster.start() ran
            dagster.process.wait()
        else:
            # The runs still record their checks: let them end before dagster dev stops, so none is cut short.
            with console.status("waiting for the runs to finish before stopping Dagster"):
                wait_until(
                    "the stream and dbt runs to finish",
                    lambda: dagster.runs_in_progress() == 0,
                    300,
                    dagster.raise_if_a_run_failed,
                )
        return result
    except StackFailed as exc:
        console.print(f"[red]✗[/red] {exc}")
        if serve and dagster.answering():
            console.print(
                f"The Dagster UI stays up to show what the runs did: [bold]{dagster.url}[/bold]. Ctrl-C stops it."
            )
            assert dagster.process is not None  # it answered, so it was started
            with contextlib.suppress(KeyboardInterrupt):
                dagster.process.wait()
        raise
    finally:
        forex.stop()
        dagster.stop()
        stop_leftover_children()


def stop_leftover_children() -> None:
    """End what this process started in its own process group: the `tail -F` that Dagster's compute-log
    capture starts for an in-process run can outlive the run, holding the demo's stdout open (so a caller
    reading the output to its end would wait for ever). The embedded PostgreSQL and Kafka run in sessions
    of their own, and on until `txstream down`; dagster dev's group is stopped before."""
    own_group = os.getpgrp()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(child.pid) == own_group:
                child.kill()
