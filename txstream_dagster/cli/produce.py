"""`txstream produce`: continuous production into the topic, with a progress bar and a final summary.

txstream produce --rate 5000 --duration 60s         # synthetic stream, timestamps ≈ now
txstream produce --history-days 7 --count 200000    # a week of synthetic history, then exit
STRIPE_API_KEY=sk_test_… txstream produce           # pull from Stripe every 10 s until Ctrl-C
"""

from __future__ import annotations

import random
import re
import signal
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from txstream_dagster.cli.output import console, settings_or_exit

if TYPE_CHECKING:  # the pipeline's modules are imported when a command runs, so `--help` answers at once
    from txstream_dagster.defs.stripe_source.resources import StripeResource
    from txstream_dagster.defs.stripe_source.topic_feeds import FeedSummary
    from txstream_dagster.resources import PostgresResource

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class Duration(click.ParamType):
    """`90`, `90s`, `5m`, `1h30m`, `250ms` → seconds."""

    name = "duration"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            self.fail(f"{value!r} is not a duration: use e.g. 60s, 5m, 1h30m", param, ctx)
        return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


@contextmanager
def stop_on_ctrl_c():
    """First Ctrl-C: finish the chunk in flight, confirm delivery, print the summary. Second: abort."""
    stop = threading.Event()

    def request_stop(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("[yellow]Stopping after the messages in flight are acknowledged (Ctrl-C again to abort)…")

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def print_summary(summary: FeedSummary) -> None:
    from txstream_dagster.defs.stripe_source.topic_feeds import format_epoch

    table = Table(title=f"Published to {summary.topic}", show_header=False, title_justify="left")
    table.add_row("source", summary.source)
    table.add_row("messages", f"{summary.messages:,}")
    for object_type, count in sorted(summary.by_object_type.items()):
        table.add_row(f"  {object_type}", f"{count:,}")
    table.add_row("elapsed", f"{summary.seconds:.1f} s")
    table.add_row("rate", f"{summary.per_second:,.0f} messages/s")
    if summary.resent:
        table.add_row("re-sent after a delivery failure", f"{summary.resent:,}")
    if summary.seed is not None:
        table.add_row("seed", str(summary.seed))
    for object_type, count in sorted(summary.backfilled.items()):
        table.add_row(f"backfilled {object_type}s (list endpoints)", f"{count:,}")
    if summary.backfill_complete is False:
        table.add_row("backfill", "stopped before the end: the next pull resumes it")
    if summary.cursor_created_gte is not None:
        table.add_row("Stripe cursor", f"events from {format_epoch(summary.cursor_created_gte)} on are next")
        table.add_row("rate-limited requests", str(summary.rate_limited))
    table.add_row(
        "partition end offsets",
        ", ".join(f"{partition}: {offset:,}" for partition, offset in sorted(summary.end_offsets.items())),
    )
    console.print(table)


@click.command()
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=5000.0,
    show_default=True,
    help="Synthetic: messages per second; 0 = as fast as Kafka takes them.",
)
@click.option(
    "--duration",
    type=Duration(),
    default=None,
    help="How long to run (60s, 5m, 1h). Default: until --count, or Ctrl-C.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="Synthetic: stop after this many messages (with --history-days: this many charges).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Synthetic: generator seed; the same seed and start give the same objects. Default: random, printed.",
)
@click.option(
    "--history-days",
    type=click.IntRange(0, 365),
    default=0,
    help="Synthetic: publish --count charges spread over the last N days (with their refunds and disputes), then exit.",
)
@click.option(
    "--source",
    type=click.Choice(["auto", "synthetic", "stripe"]),
    default="auto",
    show_default=True,
    help="auto: Stripe when STRIPE_API_KEY is set, synthetic otherwise.",
)
@click.option("--topic", default=None, help="Kafka topic. Default: TXSTREAM_TOPIC.")
@click.option("--poll-interval", type=Duration(), default="10s", show_default=True, help="Stripe: time between pulls.")
@click.option(
    "--backfill-from",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Stripe: first list every object created from this UTC date on again (e.g. what the daily "
    "reconciliation found missing), then go on with the events.",
)
@click.option(
    "--create-test-charges",
    type=click.IntRange(min=1),
    default=None,
    help="Stripe test mode only: first create N test charges with varied test cards and currencies.",
)
def produce(
    rate, duration, count, seed, history_days, source, topic, poll_interval, backfill_from, create_test_charges
) -> None:
    """Publish Stripe charges, refunds and disputes to Kafka: pulled from Stripe, or synthetic."""
    from txstream_dagster.resources.build import event_log, stripe_account, warehouse

    settings = settings_or_exit()
    stripe = stripe_account(settings)
    use_stripe = source == "stripe" or (source == "auto" and stripe.configured)
    if use_stripe and not stripe.configured:
        raise click.UsageError("--source stripe needs STRIPE_API_KEY (a secret or restricted key).")
    if backfill_from and not use_stripe:
        raise click.UsageError("--backfill-from needs the Stripe source (STRIPE_API_KEY).")
    if create_test_charges and not use_stripe:
        raise click.UsageError("--create-test-charges needs the Stripe source (STRIPE_API_KEY).")
    if history_days and not count:
        raise click.UsageError("--history-days needs --count: how many charges the history holds.")
    kafka = event_log(settings)
    if topic:
        kafka = kafka.for_topic(topic)
    deadline = time.monotonic() + duration if duration is not None else None

    with stop_on_ctrl_c() as stop:
        if use_stripe:
            if create_test_charges:
                make_test_charges(stripe, create_test_charges, seed)
            if backfill_from:
                schedule_backfill(kafka, stripe, warehouse(settings), backfill_from)
            summary = produce_from_stripe(kafka, stripe, warehouse(settings), deadline, poll_interval, stop)
        else:
            seed = seed if seed is not None else random.randrange(2**31)
            summary = produce_synthetic(kafka, warehouse(settings), rate, deadline, count, seed, history_days, stop)
    print_summary(summary)


def produce_synthetic(kafka, postgres, rate, deadline, count, seed, history_days, stop) -> FeedSummary:
    from txstream_dagster.defs.stripe_source.synthetic_ledger import synthetic_ledger
    from txstream_dagster.defs.stripe_source.topic_feeds import publish_synthetic

    total = (
        None if history_days else count or (int(rate * (deadline - time.monotonic())) if rate and deadline else None)
    )
    what = f"{count:,} charges over {history_days} days" if history_days else "synthetic stream"
    console.print(f"[cyan]Publishing {what} to {kafka.topic} (seed {seed})")
    with progress_bar() as bar, synthetic_ledger(postgres) as ledger:
        task = bar.add_task("messages", total=total, note="")
        started = time.monotonic()

        def advance(n: int) -> None:
            bar.advance(task, n)
            done = bar.tasks[task].completed
            bar.update(task, note=f"{done / max(time.monotonic() - started, 1e-6):,.0f}/s")

        return publish_synthetic(
            kafka,
            seed=seed,
            count=count,
            rate=rate or None,
            history_days=history_days,
            deadline=deadline,
            stop=stop,
            progress=advance,
            ledger=ledger,
        )


def produce_from_stripe(kafka, stripe, postgres: PostgresResource, deadline, poll_interval, stop) -> FeedSummary:
    from txstream_dagster.defs.stripe_source.stripe_api import StripeUnavailable
    from txstream_dagster.defs.stripe_source.topic_feeds import FeedSummary, format_epoch, pull_stripe
    from txstream_dagster.resources.kafka import BrokerUnavailable

    console.print(f"[cyan]Pulling Stripe events ({stripe.mode} mode) into {kafka.topic} every {poll_interval:g} s")
    if stripe.key_warning:
        console.print(f"[yellow]![/yellow] {stripe.key_warning}")
    summary = FeedSummary("stripe", kafka.topic)
    with progress_bar() as bar:
        task = bar.add_task("messages", total=None, note="")
        while True:
            try:
                pull_stripe(
                    kafka,
                    stripe,
                    postgres,
                    progress=lambda n: bar.advance(task, n),
                    on_backfill_window=lambda object_type, before: bar.update(
                        task, note=f"backfill: {object_type}s created before {format_epoch(before)} published"
                    ),
                    summary=summary,
                    stop=stop,
                )
            except (StripeUnavailable, BrokerUnavailable) as exc:  # the cursor did not move: the next pull retries
                console.print(f"[yellow]! {exc}")
            if summary.cursor_created_gte is not None:
                bar.update(task, note=f"events up to {format_epoch(summary.cursor_created_gte)} published")
            next_pull = time.monotonic() + poll_interval
            if deadline is not None and next_pull > deadline:
                return summary
            while time.monotonic() < next_pull:
                if stop.wait(timeout=0.2):
                    return summary


def schedule_backfill(kafka, stripe: StripeResource, postgres: PostgresResource, backfill_from) -> None:
    from datetime import UTC

    from txstream_dagster.defs.stripe_source.backfill import request_backfill
    from txstream_dagster.defs.stripe_source.topic_feeds import stripe_cursors

    request_backfill(
        stripe_cursors(postgres, stripe),
        kafka.topic,
        from_s=int(backfill_from.replace(tzinfo=UTC).timestamp()),
        now_s=int(time.time()),
        settle_seconds=stripe.settle_seconds,
    )
    console.print(f"[cyan]Listing every object created from {backfill_from:%Y-%m-%d} on again (then the events)")


def make_test_charges(stripe: StripeResource, count: int, seed: int | None) -> None:
    from txstream_dagster.defs.stripe_source.stripe_test_mode import create_test_charges
    from txstream_dagster.defs.stripe_source.topic_feeds import stripe_api

    seed = seed if seed is not None else random.randrange(2**31)
    with progress_bar() as bar:
        task = bar.add_task("test charges", total=count, note="")
        outcome = create_test_charges(stripe_api(stripe), stripe.mode, count, seed, lambda n: bar.advance(task, n))
    console.print(
        f"[green]✓[/green] created {count} test charges (seed {seed}): "
        + ", ".join(f"{n} {what}" for what, n in sorted(outcome.items()))
    )
