"""Security properties of the repository itself: no committed secrets, no SQL built from strings."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Shapes of real credentials. Test keys (sk_test_) are secrets too: they open a Stripe account.
SECRET_PATTERNS = {
    "Stripe secret key": re.compile(r"\b[sr]k_(live|test)_[0-9a-zA-Z]{16,}"),
    "Stripe webhook secret": re.compile(r"\bwhsec_[0-9a-zA-Z]{16,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[0-9A-Za-z]{30,}"),
    # Placeholders are fine: ***, $VAR / ${VAR}, <password>, {password}, the word "password".
    "password in a URL": re.compile(
        r"\b(postgres(?:ql)?|kafka|amqp|redis)://[^\s:/@]+:(?!\*\*\*|\$|<|\{|password@|EXAMPLE-ONLY-)[^\s@/]{4,}@"
    ),
}
# Tests use made-up credentials on purpose (wrong passwords, redaction checks).
URL_PASSWORDS_ALLOWED_IN = ("tests/",)
# The example values .env.example documents must never be used anywhere else.
EXAMPLE_VALUE = re.compile(r"EXAMPLE-ONLY-[A-Za-z0-9-]+")
# Files that may show placeholders: the example env file itself.
EXAMPLE_FILES = {".env.example"}


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO_ROOT / name for name in listed if (REPO_ROOT / name).is_file()]


def text_of(path: Path) -> str | None:
    try:
        return path.read_text()
    except (UnicodeDecodeError, OSError):
        return None


def test_no_credentials_are_committed():
    found = []
    for path in tracked_files():
        text = text_of(path)
        if text is None or path.name == Path(__file__).name:
            continue
        relative = str(path.relative_to(REPO_ROOT))
        for what, pattern in SECRET_PATTERNS.items():
            if what == "password in a URL" and relative.startswith(URL_PASSWORDS_ALLOWED_IN):
                continue
            for match in pattern.finditer(text):
                found.append(f"{path.relative_to(REPO_ROOT)}: {what}: {match.group(0)[:24]}…")
    assert not found, "credentials in the repository:\n" + "\n".join(found)


def test_example_passwords_appear_only_in_the_example_file():
    found = [
        str(path.relative_to(REPO_ROOT))
        for path in tracked_files()
        if path.name not in EXAMPLE_FILES
        and path.name != Path(__file__).name
        and (text := text_of(path)) is not None
        and EXAMPLE_VALUE.search(text)
    ]
    assert not found, f"example passwords used outside .env.example: {found}"


def test_env_files_with_real_values_are_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", ".env"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert ignored.returncode == 0, ".env must be listed in .gitignore"


SQL_CALLS = {"execute", "executemany", "fetch_all", "fetch_one", "copy"}


def sql_built_from_strings(tree: ast.AST) -> list[int]:
    """Lines where SQL handed to a database call is an f-string, a %-format or a .format() of a str."""
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS):
            continue
        if not node.args:
            continue
        query = node.args[0]
        formatted = (
            isinstance(query, ast.JoinedStr)
            or (isinstance(query, ast.BinOp) and isinstance(query.op, (ast.Mod, ast.Add)))
            or (
                isinstance(query, ast.Call)
                and isinstance(query.func, ast.Attribute)
                and query.func.attr == "format"
                and isinstance(query.func.value, ast.Constant)
            )
        )
        if formatted:
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "source",
    sorted(
        str(p.relative_to(REPO_ROOT))
        for p in REPO_ROOT.glob("*/**/*.py")
        if ".venv" not in p.parts and "tests" not in p.parts
    ),
)
def test_sql_is_never_built_by_string_formatting(source):
    """Values travel as parameters and identifiers through psycopg.sql, never pasted into SQL text."""
    tree = ast.parse((REPO_ROOT / source).read_text())
    assert sql_built_from_strings(tree) == [], f"{source}: SQL built from a formatted string"


def test_the_sql_guard_catches_formatting():
    tree = ast.parse(
        'cur.execute(f"SELECT {x}")\nconn.fetch_all("SELECT %s" % y)\nc.execute("A {}".format(z))\n'
        'cur.execute("SELECT %s", [x])\ncur.execute(sql.SQL("{}").format(sql.Identifier(t)))'
    )
    assert sql_built_from_strings(tree) == [1, 2, 3]
