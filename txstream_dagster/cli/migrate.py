"""`txstream migrate`: bring the warehouse's schema up to date, as its owner."""

from __future__ import annotations

import click

from txstream_dagster.cli.output import console, settings_or_exit


@click.command()
def migrate() -> None:
    """Apply pending database migrations (idempotent) and let each login sign in with its TXSTREAM_*_PASSWORD."""
    from txstream_dagster.db.migrate import upgrade_warehouse
    from txstream_dagster.resources.build import login_passwords, warehouse

    settings = settings_or_exit()
    applied = upgrade_warehouse(warehouse(settings), login_passwords(settings))
    console.print(f"[green]✓[/green] applied: {', '.join(applied)}" if applied else "[green]✓[/green] up to date")
