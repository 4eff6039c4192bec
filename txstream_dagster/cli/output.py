"""What every command shares: the console it prints to, and the settings, read once when it starts."""

from __future__ import annotations

import sys

from pydantic import ValidationError
from rich.console import Console

from txstream_dagster.settings import Settings, load_settings

console = Console()


def settings_or_exit() -> Settings:
    """The settings; an invalid one is printed as one line per problem (each names its variable) and exits 2."""
    try:
        return load_settings()
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]Invalid setting[/red] {error['msg']}")
        sys.exit(2)
