"""How long `txstream up` takes to bring the embedded Apache Kafka up: first start, warm restarts, after kill -9.

    python bench/kafka_start.py [--restarts 3]

Each figure is the time from `KafkaNode.start()` until the node answers clients as
a broker of its cluster (what `txstream up` waits for). The first start formats an
empty log dir; a warm start reuses it (topics and offsets kept); the start after a
`kill -9` recovers the log first. Goal: warm ≤ 10 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from txstream_dagster.dev.embedded_kafka import KafkaNode, Retention
from txstream_dagster.dev.processes import free_port
from txstream_dagster.resources import KafkaResource
from txstream_dagster.settings import Settings


def timed_start(node: KafkaNode) -> float:
    started = time.perf_counter()
    node.start()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--restarts", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="txstream-bench-") as root:
        node = KafkaNode(
            Path(root),
            Settings().jvm_lib_dir,
            port=free_port(),
            controller_port=free_port(),
            retention=Retention(hours=168, bytes_per_partition=1024**3),
        )
        first = timed_start(node)
        kafka = KafkaResource(
            bootstrap=node.bootstrap, topic="bench.start", partitions=4, replication=1, compression="none"
        )
        kafka.ensure_topic(partitions=4, replication=1)
        producer = kafka.producer()
        for n in range(20_000):
            producer.send(kafka.topic, key=b"k%d" % n, value=b"x" * 2_000)
        producer.close()

        warm = []
        for _ in range(args.restarts):
            node.stop()
            warm.append(timed_start(node))
        node.kill()
        after_crash = timed_start(node)
        assert sum(kafka.end_offsets().values()) == 20_000
        node.stop()

    print(f"first start (formats the log dir)   {first:5.1f} s")
    print(
        f"warm start, median of {len(warm)}            {statistics.median(warm):5.1f} s  "
        f"(max {max(warm):.1f} s; goal ≤ 10 s)"
    )
    print(f"start after kill -9 (log recovery)  {after_crash:5.1f} s  (20,000 messages kept)")


if __name__ == "__main__":
    main()
