"""Where reports are kept: a folder, each file written so that no reader ever sees half of it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from txstream_dagster.files import SHARED, replace_file


class ReportFolder(dg.ConfigurableResource):
    """The folder the PNG of each report run is kept in (`<data_dir>/reports` unless deployed otherwise)."""

    path: str

    def write(self, name: str, content: bytes) -> Path:
        """`name` in the folder, replaced atomically: a reader (a mail job, a file server) never sees half a file."""
        return replace_file(Path(self.path) / name, content, SHARED)
