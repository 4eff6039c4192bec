"""`txstream`: start the local stack, inspect it, produce events, run the whole pipeline."""

from __future__ import annotations

import random
import sys

import click
from pydantic import ValidationError
from rich.console import Console

from txstream_dagster.defs.dbt.cli import dbt_command
from txstream_dagster.defs.stream.cli import stream
from txstream_dagster.defs.stripe_source.cli import produce
from txstream_dagster.local_stack import LocalStack
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.settings import get_settings

console = Console()


def _settings():
    try:
        return get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]Invalid setting[/red] {error['msg']}")
        sys.exit(2)


def warehouse() -> PostgresResource:
    return PostgresResource()


def event_log() -> KafkaResource:
    return KafkaResource(topic=_settings().topic)


class _Group(click.Group):
    """Operational failures print as one clear line (they say what to do), not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RuntimeError as exc:
            console.print(f"[red]✗[/red] {exc}")
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """txstream: Stripe → Kafka → Spark → PostgreSQL → dbt → Grafana, orchestrated by Dagster."""


@main.command()
def up() -> None:
    """Start the embedded PostgreSQL and Apache Kafka (what is not configured), migrate, create the topic."""
    settings = _settings()
    for line in LocalStack(settings).up():
        console.print(f"[green]✓[/green] {line}")
    applied = warehouse().migrate()
    console.print("[green]✓[/green] schema up to date" + (f" (applied {', '.join(applied)})" if applied else ""))
    created = event_log().ensure_topic(settings.topic_partitions, settings.topic_replication)
    console.print(
        f"[green]✓[/green] topic {settings.topic} {'created' if created else 'exists'}"
    )


@main.command()
def down() -> None:
    """Stop the embedded services this machine started."""
    done = LocalStack(_settings()).down()
    for line in done or ["nothing was running"]:
        console.print(f"[green]✓[/green] {line}")


@main.command()
def status() -> None:
    """Show whether PostgreSQL and Kafka answer, embedded or external. Exit code 1 when one doesn't."""
    settings = _settings()
    stack = LocalStack(settings)
    healthy = True
    try:
        row = warehouse().fetch_one(
            "SELECT current_setting('server_version'), "
            "(SELECT count(*) FROM ops.schema_migrations WHERE to_regclass('ops.schema_migrations') IS NOT NULL)"
        )
        console.print(
            f"[green]✓[/green] PostgreSQL {row[0]} ({'embedded' if stack.embeds_postgres else 'external'}), "
            f"{row[1]} migrations applied"
        )
    except Exception as exc:  # noqa: BLE001 - status reports every failure the same way
        healthy = False
        console.print(f"[red]✗[/red] PostgreSQL: {exc}")
    try:
        kafka = event_log()
        topic = kafka.describe_topic()
        total = sum(kafka.end_offsets().values())
        console.print(
            f"[green]✓[/green] Kafka at {kafka.resolved_bootstrap()} "
            f"({'embedded' if stack.embeds_kafka else 'external'}): topic {topic.name}, "
            f"{topic.partitions} partitions, {total} messages"
        )
    except Exception as exc:  # noqa: BLE001
        healthy = False
        console.print(f"[red]✗[/red] Kafka: {exc}")
    sys.exit(0 if healthy else 1)


@main.command()
@click.option("--charges", default=20_000, show_default=True, help="Synthetic charges to publish.")
@click.option("--days", default=7, show_default=True, help="Days of history they are spread over.")
@click.option("--seed", type=int, default=None, help="Generator seed (default: random, printed).")
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
@click.option("--no-ui", is_flag=True, help="Stop Dagster after the summary instead of serving the UI.")
def demo(charges: int, days: int, seed: int | None, port: int, no_ui: bool) -> None:
    """Everything end to end: embedded stack, synthetic charges, Spark, forex, dbt, a summary, the UI."""
    from txstream_dagster.demo import DemoFailed, run_demo

    try:
        run_demo(_settings(), charges=charges, days=days, seed=seed if seed is not None else random.randrange(10**6),
                 port=port, console=console, serve=not no_ui)
    except DemoFailed:  # run_demo said what went wrong and where to look
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("stopped")


@main.group()
def topic() -> None:
    """Manage the event topic."""


@topic.command("create")
def topic_create() -> None:
    """Create TXSTREAM_TOPIC with TXSTREAM_TOPIC_PARTITIONS / _REPLICATION (no-op when it exists)."""
    settings = _settings()
    created = event_log().ensure_topic(settings.topic_partitions, settings.topic_replication)
    console.print(f"[green]✓[/green] topic {settings.topic} {'created' if created else 'already exists'}")


@main.command()
def migrate() -> None:
    """Apply pending database migrations (idempotent)."""
    applied = warehouse().migrate()
    console.print(f"[green]✓[/green] applied: {', '.join(applied)}" if applied else "[green]✓[/green] up to date")


# Each stage's own commands.
main.add_command(produce)
main.add_command(stream)
main.add_command(dbt_command)
