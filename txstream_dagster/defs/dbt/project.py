"""The dbt project, prepared once per process.

In development (`dagster dev`) the project is parsed at load time, so edits to
models show up on reload. For deployment the manifest is built when the image is
built:

    dagster-dbt project prepare-and-package --file txstream_dagster/defs/dbt/project.py

and loading only reads it. Anywhere else (tests, `dagster definitions validate`)
a missing manifest is built on first use rather than failing the import.
"""

from __future__ import annotations

import functools

from dagster_dbt import DbtCliResource, DbtProject

from txstream_dagster.defs.dbt.resources import dbt_executable
from txstream_dagster.paths import dbt_project_dir


def parse(project: DbtProject) -> None:
    """`dbt parse` with the venv's dbt: dagster-dbt's own preparer runs `dbt` from PATH, and a venv used
    without activation has it only next to the interpreter. Parsing needs no connection: it reads the
    project's own profiles.yml, whose connection fields are placeholders."""
    DbtCliResource(project_dir=project, dbt_executable=dbt_executable()).cli(
        ["parse", "--quiet"], target_path=project.target_path
    ).wait()


# Module level, so `dagster-dbt project prepare-and-package --file` finds it.
# Constructing it only reads dbt_project.yml.
dbt_project = DbtProject(project_dir=dbt_project_dir())


@functools.cache
def txstream_dbt_project() -> DbtProject:
    if dbt_project.preparer.using_dagster_dev() or not dbt_project.manifest_path.exists():
        parse(dbt_project)
    return dbt_project
