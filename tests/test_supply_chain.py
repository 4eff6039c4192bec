"""The Python dependencies the README's install takes: pinned in requirements.lock, every file checked by hash."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)==(?P<version>\S+) \\$", re.MULTILINE)


def locked() -> dict[str, Version]:
    return {canonicalize_name(m["name"]): Version(m["version"]) for m in PIN.finditer(LOCK.read_text())}


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def test_every_dependency_pyproject_declares_is_pinned_in_the_lock_within_its_range():
    pins = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject's {requirement}: run `make lock`"
        )


def test_every_pin_carries_the_hashes_pip_checks():
    entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", LOCK.read_text().split("\n", 6)[-1])
    pins = [entry for entry in entries if PIN.match(entry)]
    assert len(pins) == len(locked()) > 100
    for entry in pins:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry.splitlines()[0]


def test_the_install_takes_only_what_the_lock_names_and_checks_its_hashes():
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet --require-hashes --no-deps -r requirements.lock" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile  # txstream itself, nothing more
