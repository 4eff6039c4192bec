"""`txstream quarantine`: what the stream quarantined, and replaying it through the current transform."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

from txstream_dagster.cli.output import console, settings_or_exit

_RELATIVE = re.compile(r"^(\d+)\s*([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """`--since`: a duration back from now (30m, 12h, 7d) or an ISO 8601 date or time (UTC unless it says).
    Pure."""
    if text is None:
        return None
    relative = _RELATIVE.match(text.strip())
    if relative:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[relative[2]]: int(relative[1])})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a duration (30m, 12h, 7d) nor an ISO 8601 time (2026-12-01, 2026-12-01T09:30Z)",
            param_hint="--since",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


_reason = click.option("--reason", help="Only messages quarantined for this reason (e.g. missing_field).")
_since = click.option("--since", help="Only messages quarantined since then: 30m, 12h, 7d, or an ISO 8601 time (UTC).")


@click.group("quarantine")
def quarantine() -> None:
    """Messages the stream could not accept, kept in raw.quarantined_events with why."""


@quarantine.command("list")
@_reason
@_since
@click.option("--limit", default=50, show_default=True, help="Messages listed, newest first.")
def list_quarantined(reason: str | None, since: str | None, limit: int) -> None:
    """Count quarantined messages by reason, then list the newest with their Kafka coordinates and replay state."""
    from rich.table import Table

    from txstream_dagster.defs.stream.quarantine import count_by_reason, quarantined_messages
    from txstream_dagster.resources.build import warehouse

    postgres = warehouse(settings_or_exit())
    after = parse_since(since)
    counts = count_by_reason(postgres, reason=reason, since=after)
    if not counts:
        console.print("Nothing quarantined" + (" that matches" if reason or since else "") + ".")
        return
    by_reason = Table(title="Quarantined messages by reason", title_justify="left")
    by_reason.add_column("reason")
    by_reason.add_column("quarantined", justify="right")
    by_reason.add_column("landed by a replay", justify="right")
    for name, held, landed in counts:
        by_reason.add_row(name, str(held), str(landed))
    console.print(by_reason)

    messages = quarantined_messages(postgres, reason=reason, since=after, limit=limit)
    rows = Table(title=f"Newest {len(messages)}", title_justify="left")
    for column in ("topic", "partition", "offset", "reason", "detail", "quarantined (UTC)", "replay"):
        rows.add_column(column, overflow="fold")
    for m in messages:
        rows.add_row(
            m.kafka_topic,
            str(m.kafka_partition),
            str(m.kafka_offset),
            m.reason,
            m.detail,
            f"{m.quarantined_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            m.replay_state,
        )
    console.print(rows)


@quarantine.command("replay")
@_reason
@_since
@click.option("--dry-run", is_flag=True, help="Do everything, then roll it back: show what a replay would do.")
def replay(reason: str | None, since: str | None, dry_run: bool) -> None:
    """Put pending quarantined messages through the current transform: those that now parse land in
    raw.transactions once (latest version wins) and are marked replayed; the others stay, with their new reason."""
    from txstream_dagster.defs.stream.quarantine import replay_quarantine
    from txstream_dagster.resources.build import warehouse

    report = replay_quarantine(warehouse(settings_or_exit()), reason=reason, since=parse_since(since), dry_run=dry_run)
    prefix = "[yellow]dry run, nothing written:[/yellow] " if dry_run else "[green]✓[/green] "
    console.print(
        f"{prefix}replayed {report.replayed}: landed {report.landed} (inserted {report.inserted}, updated "
        f"{report.updated}, duplicates {report.duplicates}), still failing {report.still_failing.total()}"
    )
    for name, count in report.still_failing.most_common():
        console.print(f"  still failing: {name} {count}")
