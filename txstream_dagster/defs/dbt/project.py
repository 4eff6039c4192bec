"""The dbt project, prepared once per process.

In development (`dagster dev`) `prepare_if_dev()` runs `dbt parse` at load time,
so edits to models show up on reload. For deployment the manifest is built when
the image is built:

    dagster-dbt project prepare-and-package --file txstream_dagster/defs/dbt/project.py

and loading only reads it. Anywhere else (tests, `dagster definitions validate`)
a missing manifest is built on first use rather than failing the import.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from dagster_dbt import DbtProject

from txstream_dagster.currencies import dbt_project_dir
from txstream_dagster.defs.dbt.resources import dbt_executable

# Module level, so `dagster-dbt project prepare-and-package --file` finds it.
# Constructing it only reads dbt_project.yml.
dbt_project = DbtProject(project_dir=dbt_project_dir())


@functools.cache
def txstream_dbt_project() -> DbtProject:
    # dagster-dbt's preparer runs `dbt` from PATH; a venv used without activation
    # has it only next to the interpreter.
    venv_bin = str(Path(dbt_executable()).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != venv_bin:
        os.environ["PATH"] = os.pathsep.join([venv_bin, os.environ.get("PATH", "")])
    dbt_project.prepare_if_dev()
    if not dbt_project.manifest_path.exists():
        dbt_project.preparer.prepare(dbt_project)
    return dbt_project
