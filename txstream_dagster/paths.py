"""Where txstream's own files are: the repository checkout (or image) the code runs from."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def dbt_project_dir() -> Path:
    """The dbt project txstream builds. Read from the environment, not the settings: dagster-dbt's
    `project prepare-and-package --file` imports it when the image is built, before any setting exists."""
    return Path(os.environ.get("TXSTREAM_DBT_PROJECT_DIR", REPO_ROOT / "dbt_project")).resolve()
