"""Synthetic producer throughput into Kafka, beside a raw kafka-python loop measured in the same run.

    .venv/bin/python bench/producer_throughput.py [--messages 100000] [--rounds 2]

Starts its own embedded Apache Kafka and PostgreSQL (temp data dir, free ports)
unless TXSTREAM_KAFKA_BOOTSTRAP / TXSTREAM_POSTGRES_URL are set. Each measurement
gets a fresh topic with the default partition count, deleted afterwards.

- ceiling: a raw kafka-python loop: KafkaResource.producer() (idempotent,
  acks=all) sending pre-built messages (the same bytes our producer sends),
  then flush;
- txstream producer: Publisher.publish of the same objects (encode with the
  contract's key and headers, chunks, every delivery confirmed): what every
  source pays to publish, compared with the ceiling (goal ≥ 0.80);
- synthetic end to end: SyntheticStripe.stream → Publisher, generating the
  objects as it goes (the generator's own rate is printed too);
- synthetic with its ledger: the same, each chunk also recorded in
  ops.synthetic_stripe_objects while it is sent (what "Stripe" holds for the
  daily reconciliation), until the last is written: what `txstream produce
  --rate 0`, the topic asset and the demo do.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from contextlib import contextmanager
from itertools import islice

from throwaway_stack import throwaway_stack
from txstream_dagster.defs.stripe_source.publisher import Publisher, encode
from txstream_dagster.defs.stripe_source.synthetic_charges import SyntheticStripe
from txstream_dagster.defs.stripe_source.synthetic_ledger import synthetic_ledger
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.settings import Settings

START_MS = 1_780_000_000_000
STREAM_RATE = 5_000.0


@contextmanager
def fresh_topic(bootstrap: str, partitions: int):
    kafka = KafkaResource(
        bootstrap=bootstrap,
        topic=f"bench.producer.{uuid.uuid4().hex[:8]}",
        partitions=partitions,
        replication=1,
        compression="none",
    )
    kafka.ensure_topic(partitions, replication=1)
    try:
        yield kafka
    finally:
        with kafka.admin() as admin:
            admin.delete_topics([kafka.topic])


def ceiling(bootstrap: str, partitions: int, messages: list) -> float:
    with fresh_topic(bootstrap, partitions) as kafka:
        producer = kafka.producer()
        started = time.perf_counter()
        for message in messages:
            producer.send(kafka.topic, key=message.key, value=message.value, headers=message.headers)
        producer.flush()
        elapsed = time.perf_counter() - started
        producer.close()
        assert sum(kafka.end_offsets().values()) == len(messages)
    return len(messages) / elapsed


def txstream_producer(bootstrap: str, partitions: int, versions: list) -> float:
    with fresh_topic(bootstrap, partitions) as kafka:
        producer = kafka.producer()
        started = time.perf_counter()
        report = Publisher(producer, kafka.topic, "synthetic").publish(versions)
        elapsed = time.perf_counter() - started
        producer.close()
        assert report.messages == len(versions) == sum(kafka.end_offsets().values())
    return len(versions) / elapsed


def generator_rate(count: int, seed: int) -> float:
    generator = SyntheticStripe(seed)
    started = time.perf_counter()
    for _ in islice(generator.stream(START_MS, STREAM_RATE), count):
        pass
    return count / (time.perf_counter() - started)


def synthetic_end_to_end(bootstrap: str, partitions: int, count: int, seed: int) -> float:
    with fresh_topic(bootstrap, partitions) as kafka:
        producer = kafka.producer()
        generator = SyntheticStripe(seed)  # the customer population is built here, outside the timing
        started = time.perf_counter()
        report = Publisher(producer, kafka.topic, "synthetic").publish(
            islice(generator.stream(START_MS, STREAM_RATE), count)
        )
        elapsed = time.perf_counter() - started
        producer.close()
        assert report.messages == count == sum(kafka.end_offsets().values())
    return count / elapsed


def synthetic_with_ledger(postgres: PostgresResource, bootstrap: str, partitions: int, count: int, seed: int) -> float:
    with fresh_topic(bootstrap, partitions) as kafka:
        producer = kafka.producer()
        generator = SyntheticStripe(seed)
        started = time.perf_counter()
        with synthetic_ledger(postgres) as ledger:  # leaving it waits until the last chunk is written
            report = Publisher(producer, kafka.topic, "synthetic", before_send=ledger.record).publish(
                islice(generator.stream(START_MS + seed * 86_400_000, STREAM_RATE), count)
            )
        elapsed = time.perf_counter() - started
        producer.close()
        assert report.messages == count == sum(kafka.end_offsets().values())
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=Settings(_env_file=None).topic_partitions)
    args = parser.parse_args()

    versions = list(islice(SyntheticStripe(0).stream(START_MS, STREAM_RATE), args.messages))
    prebuilt = [encode(v, "synthetic") for v in versions]
    mean_bytes = sum(len(m.value) for m in prebuilt) / len(prebuilt)
    with throwaway_stack() as (postgres, stack_kafka):
        bootstrap = stack_kafka.bootstrap
        where = "TXSTREAM_KAFKA_BOOTSTRAP" if os.environ.get("TXSTREAM_KAFKA_BOOTSTRAP") else "embedded Apache Kafka"
        print(
            f"broker: {where} at {bootstrap}; {args.partitions} partitions; {args.messages} messages "
            f"of {mean_bytes:.0f} bytes on average; {os.cpu_count()} CPUs"
        )
        best = {"ceiling": 0.0, "producer": 0.0, "synthetic": 0.0, "ledger": 0.0}
        for round_no in range(1, args.rounds + 1):
            figures = {
                "ceiling": ceiling(bootstrap, args.partitions, prebuilt),
                "producer": txstream_producer(bootstrap, args.partitions, versions),
                "synthetic": synthetic_end_to_end(bootstrap, args.partitions, args.messages, seed=round_no),
                "ledger": synthetic_with_ledger(postgres, bootstrap, args.partitions, args.messages, seed=round_no),
            }
            best = {name: max(best[name], rate) for name, rate in figures.items()}
            print(
                f"round {round_no}: raw kafka-python loop {figures['ceiling']:,.0f} msg/s; "
                f"txstream producer {figures['producer']:,.0f} events/s "
                f"({figures['producer'] / figures['ceiling']:.0%}); "
                f"synthetic end to end {figures['synthetic']:,.0f} events/s; "
                f"with its ledger {figures['ledger']:,.0f} events/s"
            )
        print(f"generator alone: {generator_rate(args.messages, seed=99):,.0f} objects/s")
        print(
            f"best: raw loop {best['ceiling']:,.0f} msg/s, txstream producer {best['producer']:,.0f} events/s, "
            f"ratio {best['producer'] / best['ceiling']:.2f} (goal ≥ 0.80); "
            f"synthetic end to end {best['synthetic']:,.0f} events/s, with its ledger {best['ledger']:,.0f} events/s"
        )


if __name__ == "__main__":
    main()
