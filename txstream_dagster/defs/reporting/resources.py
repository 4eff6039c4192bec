"""Where reports are kept: a folder, each file written so that no reader ever sees half of it."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg


class ReportFolder(dg.ConfigurableResource):
    """The folder the PNG of each report run is kept in (`<data_dir>/reports` unless deployed otherwise)."""

    path: str

    def write(self, name: str, content: bytes) -> Path:
        """`name` in the folder, replaced atomically: a reader (a mail job, a file server) never sees half a file."""
        target = Path(self.path) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(content)
        os.replace(partial, target)
        return target
