"""Apache Kafka in KRaft mode on 127.0.0.1: one JVM that is both broker and controller.

The jars are those `jvm/pom.xml` declares (`make install` resolves them with Maven).
Topics, messages and the cluster metadata live in `<root>/data`, so they survive
`txstream down`/`up`, a `kill -9` and a reboot: Kafka recovers its log when it starts
again. Retention by age and by size per partition keeps the disk bounded.

`KafkaNode` is one node of a cluster whose controllers are the `voters`; alone, it is
the embedded default. Several on loopback make the multi-broker cluster the tests
use to prove the distributed path.
"""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from txstream_dagster.dev.processes import PidFile, require_free_port, spawn_detached, wait_for_port
from txstream_dagster.jvm import KAFKA_BROKER, java_executable, module_jars

READY_TIMEOUT_S = 60.0
# A controlled shutdown moves leadership away and flushes the log; it takes seconds, not minutes.
STOP_TIMEOUT_S = 30.0
# Kafka's scripts give it 1 GB (-Xms = -Xmx); a local broker carrying one topic does with less. The
# heap is fixed and touched up front, as Kafka's own scripts recommend, so the broker's memory is flat
# from the start instead of creeping up to -Xmx (messages live in the page cache, not the heap).
JVM_OPTIONS = [
    "-Xms384m",
    "-Xmx384m",
    "-XX:+AlwaysPreTouch",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]
# Retention deletes whole segments: small ones let the size limit bite at a fine grain.
SEGMENT_BYTES = 64 * 1024 * 1024

LOG4J2_PROPERTIES = """\
# Kafka's own log, rolled at 10 MB, five files kept: a broker left running for weeks stays small.
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 5
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class KafkaDidNotStart(RuntimeError):
    pass


@dataclass(frozen=True)
class Retention:
    """How long, and how much per partition, the broker keeps messages (the older goes first)."""

    hours: int
    bytes_per_partition: int


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what `kafka-storage random-uuid`
    prints). Like Kafka's own, never one starting with "-", which command lines would take for an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(
    *,
    node_id: int,
    port: int,
    controller_port: int,
    voters: str,
    log_dir: Path,
    retention: Retention,
    replication: int = 1,
) -> dict[str, str]:
    """The node's `server.properties`. Pure.

    `replication` is the cluster's size as far as Kafka's internal topics and the
    defaults of new topics go: with three or more nodes a write needs two in-sync
    replicas, as production clusters are run.
    """
    min_insync = 2 if replication >= 3 else 1
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        # Topics are created on purpose, with their partitions (`txstream up`, `txstream topic create`).
        "auto.create.topics.enable": "false",
        "log.retention.hours": str(retention.hours),
        "log.retention.bytes": str(retention.bytes_per_partition),
        "log.segment.bytes": str(min(SEGMENT_BYTES, max(retention.bytes_per_partition, 1024 * 1024))),
        # Retention looks every 30 s and removes a deleted segment 10 s later (Kafka: 5 min and 60 s),
        # so the disk stays near partitions × (retention + segment) on a machine with little to spare.
        "log.retention.check.interval.ms": "30000",
        "file.delete.delay.ms": "10000",
        "default.replication.factor": str(replication),
        "min.insync.replicas": str(min_insync),
        "offsets.topic.replication.factor": str(replication),
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": str(min_insync),
        "share.coordinator.state.topic.replication.factor": str(replication),
        "share.coordinator.state.topic.min.isr": str(min_insync),
        "group.initial.rebalance.delay.ms": "0",
        # After a kill -9 the controller keeps the dead node's registration until its session times
        # out (9 s by default) and only then lets it back in: on loopback, 3 s is plenty.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "3000",
    }


def _write_properties(path: Path, properties: dict[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))


class KafkaNode:
    """One Kafka node (broker + controller) on 127.0.0.1, its files under `root`."""

    def __init__(
        self,
        root: Path,
        jvm_dir: Path,
        *,
        port: int,
        controller_port: int,
        retention: Retention,
        node_id: int = 1,
        voters: str | None = None,
        cluster_id: str | None = None,
        replication: int = 1,
    ):
        self.root = root
        self.jvm_dir = jvm_dir
        self.port = port
        self.controller_port = controller_port
        self.retention = retention
        self.node_id = node_id
        self.voters = voters or f"{node_id}@127.0.0.1:{controller_port}"
        self.cluster_id = cluster_id
        self.replication = replication
        self.log_dir = root / "data"
        self.logs_dir = root / "logs"
        self.properties_path = root / "server.properties"
        self.output_path = root / "kafka.out"  # what the JVM itself prints (a crash, a missing class)
        self.pid_file = PidFile(root / "kafka.pid", executable_name="java", cmdline_marker=str(self.properties_path))
        self.port_file = root / "kafka.port"

    # --- lifecycle --------------------------------------------------------
    def running_port(self) -> int | None:
        if self.pid_file.live_process() is None:
            return None
        try:
            return int(self.port_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        return self.running_port() is not None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.running_port() or self.port}"

    def start(self, wait: bool = True) -> bool:
        """Start the node; False when it was already running. With `wait`, return once it serves clients."""
        if self.is_running():
            return False
        java = java_executable()
        module_jars(self.jvm_dir, KAFKA_BROKER)
        require_free_port(self.port, "Kafka broker", "TXSTREAM_LOCAL_KAFKA_PORT")
        require_free_port(self.controller_port, "Kafka controller", "TXSTREAM_LOCAL_KAFKA_CONTROLLER_PORT")
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        _write_properties(
            self.properties_path,
            server_properties(
                node_id=self.node_id,
                port=self.port,
                controller_port=self.controller_port,
                voters=self.voters,
                log_dir=self.log_dir,
                retention=self.retention,
                replication=self.replication,
            ),
        )
        log4j = self.root / "log4j2.properties"
        log4j.write_text(LOG4J2_PROPERTIES)
        classpath = [
            "-cp",
            str(self.jvm_dir / KAFKA_BROKER / "*"),
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.logs_dir}",
        ]
        if not (self.log_dir / "meta.properties").exists():
            self._format(java, classpath)
        pid = spawn_detached(
            [java, *JVM_OPTIONS, *classpath, "kafka.Kafka", str(self.properties_path)], self.output_path
        )
        self.pid_file.write(pid)
        self.port_file.write_text(str(self.port))
        if wait:
            self.wait_until_ready()
        return True

    def _format(self, java: str, classpath: list[str]) -> None:
        """Write the cluster id and metadata version into an empty log dir (KRaft's one-time setup)."""
        result = subprocess.run(
            [
                java,
                *classpath,
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                f"--cluster-id={self.cluster_id or new_cluster_id()}",
                f"--config={self.properties_path}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise KafkaDidNotStart(
                f"Formatting Kafka's log dir {self.log_dir} failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-1500:]}"
            )

    def wait_until_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until this node answers as a broker of its cluster; KafkaDidNotStart with its log if it dies or stalls."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout
        while not wait_for_port(self.port, timeout=0.5) and time.monotonic() < deadline:
            if self.pid_file.live_process() is None:
                break
        while True:
            if self.pid_file.live_process() is None:
                self.port_file.unlink(missing_ok=True)
                raise KafkaDidNotStart(f"Kafka exited while starting on 127.0.0.1:{self.port}.\n{self.log_tail()}")
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap,
                    bootstrap_timeout_ms=2_000,
                    request_timeout_ms=5_000,
                    client_id="txstream-ready-check",
                )
                try:
                    brokers = {b["broker_id"] for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced")}
                finally:
                    admin.close()
                if self.node_id in brokers:
                    return
            except KafkaError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise KafkaDidNotStart(
                    f"Kafka did not serve clients on 127.0.0.1:{self.port} within {timeout:.0f} s.\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def log_tail(self, chars: int = 2000) -> str:
        tails = []
        for path in (self.output_path, self.logs_dir / "server.log"):
            if path.exists() and path.stat().st_size:
                tails.append(f"--- {path} ---\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(tails) or f"(nothing logged in {self.root})"

    def stop(self) -> bool:
        """A controlled shutdown (SIGTERM); SIGKILL if it takes over STOP_TIMEOUT_S. True when it was running."""
        stopped = self.pid_file.stop(timeout=STOP_TIMEOUT_S)
        self.port_file.unlink(missing_ok=True)
        return stopped

    def kill(self) -> None:
        """`kill -9`: what a crash or a power cut does. The next start recovers the log."""
        process = self.pid_file.live_process()
        if process is not None:
            process.kill()
            process.wait(10)
