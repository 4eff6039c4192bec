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
from txstream_dagster.resources.build import event_log, login_passwords, stripe_account, warehouse
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


def reconcile(settings: Settings, postgres: PostgresResource, home: Path, first: date, last: date) -> None:
    """`stripe_reconciliation` over the days, in this process (no code location to load), recorded in the
    demo's Dagster instance: one run, against the generator's ledger behind a local Stripe API."""
    import dagster as dg

    from txstream_dagster.defs.reconciliation.assets import stripe_reconciliation

    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize(
            [stripe_reconciliation],
            instance=instance,
            resources={"postgres": postgres, "stripe": stripe_account(settings)},
            tags={
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            },
            raise_on_error=False,
        )
    if not result.success:
        raise StackFailed(f"the stripe_reconciliation run {first} … {last} failed: see run {result.run_id} in the UI")


def stream_caught_up(postgres: PostgresResource, kafka: KafkaResource) -> bool:
    committed = one_row(
        postgres.fetch_one(
            "SELECT coalesce(sum(next_offset), 0) FROM ops.stream_offsets WHERE kafka_topic = %s", [kafka.topic]
        )
    )[0]
    return committed >= sum(kafka.end_offsets().values())


def marts_caught_up(postgres: PostgresResource) -> bool:
    if one_row(postgres.fetch_one("SELECT to_regclass('marts.fct_transactions')", login=Login.TRANSFORMER))[0] is None:
        return False
    charges, facts = one_row(
        postgres.fetch_one(
            "SELECT (SELECT count(*) FROM raw.transactions WHERE object_type = 'charge'), "
            "(SELECT count(*) FROM marts.fct_transactions)",
            login=Login.TRANSFORMER,
        )
    )
    return charges > 0 and facts == charges


def summarise(postgres: PostgresResource) -> tuple[int, int, int, int, list[tuple], tuple[int, int, int]]:
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
    revenue = postgres.fetch_all(
        """SELECT currency_code, count(*) FILTER (WHERE is_successful),
                  sum(net_amount) FILTER (WHERE is_successful), sum(net_amount_gbp) FILTER (WHERE is_successful),
                  bool_or(fx_rate_missing)
           FROM marts.fct_transactions GROUP BY 1
           ORDER BY sum(net_amount_gbp) FILTER (WHERE is_successful) DESC NULLS LAST LIMIT 12""",
        login=Login.TRANSFORMER,  # reads raw and marts
    )
    reconciled = one_row(
        postgres.fetch_one(
            """SELECT count(DISTINCT day), coalesce(sum(stripe_count), 0), coalesce(sum(cardinality(missing_ids)), 0)
               FROM ops.reconciliation_results"""
        )
    )
    return landed, quarantined, charges, fx_missing, revenue, reconciled


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
    table = Table(title="Net revenue of successful charges, by currency", title_justify="left")
    for column in ("currency", "charges", "net amount", "net GBP"):
        table.add_column(column, justify="right" if column != "currency" else "left")
    for code, count, amount, gbp, missing in result.revenue:
        table.add_row(
            code.upper(),
            f"{count:,}",
            f"{amount:,.{currency(code).exponent}f}",
            "no rate" if missing and gbp is None else f"£{gbp:,.2f}",
        )
    console.print(table)
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
                "dbt to build marts.fct_transactions",
                lambda: marts_caught_up(postgres),
                900,
                dagster.raise_if_a_run_failed,
            )
        console.print("[green]✓[/green] dbt models built: staging → dimensions and facts → daily aggregates")
        with console.status(f"reconciling {first} … {last} with what the source holds"):
            reconciling.result()
        console.print("[green]✓[/green] every whole day reconciled with what the source holds (stripe_reconciliation)")

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
