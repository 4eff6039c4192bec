"""`txstream topic create`: the event topic, created explicitly (Kafka's auto-creation is off)."""

from __future__ import annotations

import click

from txstream_dagster.cli.output import console, settings_or_exit


@click.group()
def topic() -> None:
    """Manage the event topic."""


@topic.command("create")
def topic_create() -> None:
    """Create TXSTREAM_TOPIC with TXSTREAM_TOPIC_PARTITIONS / _REPLICATION (no-op when it exists)."""
    from txstream_dagster.resources.build import event_log

    kafka = event_log(settings_or_exit())
    created = kafka.ensure_topic()
    console.print(f"[green]✓[/green] topic {kafka.topic} {'created' if created else 'already exists'}")
