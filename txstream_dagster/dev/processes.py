"""Small process helpers shared by the embedded services: ports and PID files."""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from pathlib import Path

import psutil


class PortInUse(RuntimeError):
    pass


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def require_free_port(port: int, service: str, setting: str) -> None:
    if not port_is_free(port):
        owner = _listener_of(port)
        raise PortInUse(
            f"Cannot start the embedded {service}: port {port} on 127.0.0.1 is already in use"
            f"{f' by {owner}' if owner else ''}. Stop that process or set {setting} to a free port."
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _listener_of(port: int) -> str | None:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"{proc.name()} (pid {conn.pid})"
    except (psutil.Error, PermissionError):
        pass
    return None


class PidFile:
    """A PID file that knows whether the process it names is still the one we started.

    `executable_name` must be part of the process name; `cmdline_marker`, when given, one of its
    arguments (every JVM is called `java`: the marker tells ours from another program's)."""

    def __init__(self, path: Path, executable_name: str, cmdline_marker: str | None = None):
        self.path = path
        self.executable_name = executable_name
        self.cmdline_marker = cmdline_marker

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n")

    def pid(self) -> int | None:
        try:
            return int(self.path.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def live_process(self, remove_stale: bool = True) -> psutil.Process | None:
        """The running process named by the file; a stale file (dead or reused PID) is removed,
        unless `remove_stale` is False (a file another program owns, e.g. postmaster.pid)."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
            if (
                proc.status() != psutil.STATUS_ZOMBIE
                and self.executable_name in proc.name()
                and (self.cmdline_marker is None or self.cmdline_marker in proc.cmdline())
            ):
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        if remove_stale:
            self.path.unlink(missing_ok=True)
        return None

    def names_another_program(self) -> bool:
        """The file's PID was reused: a live process runs under it, but not ours."""
        pid = self.pid()
        return pid is not None and psutil.pid_exists(pid) and self.live_process(remove_stale=False) is None

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout`. True when a process was stopped."""
        proc = self.live_process()
        if proc is None:
            return False
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        self.path.unlink(missing_ok=True)
        return True


def spawn_detached(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start a daemon that outlives this process (own session, output to a log file)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = psutil.Popen(
            argv,
            stdin=devnull,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return proc.pid
