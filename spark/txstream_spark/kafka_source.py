"""A Kafka streaming source for Spark 4's Python Data Source API, for clusters without the connector jar.

It produces the columns of Spark's own `kafka` source (key, value, topic,
partition, offset, timestamp, timestampType, headers) plus `topicId`, plans one
input partition per Kafka partition range, yields Arrow record batches, honours
`maxOffsetsPerTrigger` through admission control and `Trigger.AvailableNow`,
and keeps its offsets only in Spark's checkpoint (`commit` is called late, see
FIELD-NOTES, so nothing depends on it).

Offsets are `{"topicId": "...", "partitions": {"0": 42, ...}}`. The topic id
lets the source notice a topic that was deleted and recreated (the embedded
broker loses its topics on restart): with `failOnDataLoss=true` that stops the
query with a clear error, otherwise it starts over at the new topic's beginning.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadLimit, ReadMaxRows, SupportsTriggerAvailableNow

from txstream_spark.kafka_offsets import DataLossError, TopicIncarnation, end_offsets, end_offsets_consumer


SOURCE_NAME = "txstream_kafka"

KAFKA_SOURCE_SCHEMA = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("timestampType", pa.int32()),
        # Spark names a list's items "element", and compares schemas by name.
        ("headers", pa.list_(pa.field("element", pa.struct([("key", pa.string()), ("value", pa.binary())])))),
        ("topicId", pa.string()),
    ]
)
KAFKA_SOURCE_DDL = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
    "timestampType int, headers array<struct<key:string,value:binary>>, topicId string"
)
RECORDS_PER_ARROW_BATCH = 10_000
STALL_TIMEOUT_S = 60
BROKER_WAIT_S = 120


class KafkaRange(InputPartition):
    """Messages [start, end) of one Kafka partition: one Spark task."""

    def __init__(self, bootstrap: str, topic: str, topic_id: str, partition: int, start: int, end: int,
                 fail_on_data_loss: bool = True):
        super().__init__((partition, start, end))
        self.bootstrap = bootstrap
        self.topic = topic
        self.topic_id = topic_id
        self.partition = partition
        self.start = start
        self.end = end
        self.fail_on_data_loss = fail_on_data_loss


def plan_ranges(start: dict, end: dict) -> list[tuple[int, int, int]]:
    """(partition, from, to) for every partition with messages between two offsets. Pure.

    A partition missing from `start` (added since) is read from its beginning;
    a different topic id in `end` means a recreated topic, read from the start.
    """
    recreated = start.get("topicId") != end.get("topicId")
    ranges = []
    for partition, stop in sorted(end["partitions"].items(), key=lambda item: int(item[0])):
        begin = 0 if recreated else start["partitions"].get(partition, 0)
        if stop > begin:
            ranges.append((int(partition), begin, stop))
    return ranges


def limit_offsets(start: dict, latest: dict, max_rows: int) -> dict:
    """Advance at most `max_rows` messages past `start`, shared fairly between partitions. Pure."""
    begin = start["partitions"] if start.get("topicId") == latest.get("topicId") else {}
    position = {p: begin.get(p, 0) for p in latest["partitions"]}
    budget = max_rows
    # Water-filling: each round gives every partition that still has a backlog an equal share.
    while budget > 0:
        hungry = [p for p, end in latest["partitions"].items() if position[p] < end]
        if not hungry:
            break
        share = max(1, budget // len(hungry))
        for p in hungry:
            take = min(share, latest["partitions"][p] - position[p], budget)
            position[p] += take
            budget -= take
    return {"topicId": latest["topicId"], "partitions": position}


class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options):
        try:
            self.bootstrap = options["kafka.bootstrap.servers"]
            self.topic = options["subscribe"]
        except KeyError as missing:
            raise ValueError(f"the {SOURCE_NAME} source needs the option {missing}") from None
        self.starting_offsets = options.get("startingOffsets", "earliest")
        if self.starting_offsets not in ("earliest", "latest"):
            raise ValueError(f"startingOffsets must be 'earliest' or 'latest', got {self.starting_offsets!r}")
        self.max_offsets_per_trigger = int(options.get("maxOffsetsPerTrigger", 0)) or None
        self.fail_on_data_loss = options.get("failOnDataLoss", "true").lower() == "true"
        self.target: dict | None = None
        self.last_latest: dict | None = None
        # Kept between micro-batches on the driver: the topic's id (one admin connection) and a consumer
        # for its end offsets.
        self._incarnation: TopicIncarnation | None = None
        self._end_offsets_consumer = None

    def __getstate__(self) -> dict:
        # The reader travels to executors with the plan; its Kafka connections stay behind.
        return {**self.__dict__, "_incarnation": None, "_end_offsets_consumer": None}

    # --- planning (driver) -----------------------------------------------
    def _topic_state(self) -> dict:
        """The topic's id and end offsets, asked on every trigger (cheap: two small requests).

        A broker that is briefly away (a restart) is waited for, up to BROKER_WAIT_S.
        """
        deadline = time.monotonic() + BROKER_WAIT_S
        while True:
            try:
                latest = self._ask_topic_state()
                self.last_latest = latest
                return latest
            except Exception:  # noqa: BLE001 - kafka-python raises many kinds; all mean "not now"
                self.stop()  # reconnect on the next attempt
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def _ask_topic_state(self) -> dict:
        self._incarnation = self._incarnation or TopicIncarnation(self.bootstrap, self.topic)
        self._end_offsets_consumer = self._end_offsets_consumer or end_offsets_consumer(self.bootstrap)
        current_id = self._incarnation()
        if current_id is None:
            raise RuntimeError(
                f"Kafka topic {self.topic!r} is not available on {self.bootstrap}: create it, or check the topic option."
            )
        ends = end_offsets(self._end_offsets_consumer, self.topic)
        return {"topicId": current_id, "partitions": {str(p): o for p, o in ends.items()}}

    def stop(self) -> None:
        if self._incarnation is not None:
            self._incarnation.close()
            self._incarnation = None
        if self._end_offsets_consumer is not None:
            self._end_offsets_consumer.close()
            self._end_offsets_consumer = None

    def initialOffset(self) -> dict:
        latest = self._topic_state()
        if self.starting_offsets == "latest":
            return latest
        return {"topicId": latest["topicId"], "partitions": {p: 0 for p in latest["partitions"]}}

    def _check_data_loss(self, start: dict, latest: dict) -> None:
        lost = start.get("topicId") != latest["topicId"] or any(
            latest["partitions"].get(p, 0) < offset for p, offset in start["partitions"].items()
        )
        if lost and self.fail_on_data_loss:
            raise DataLossError(
                f"Kafka topic {self.topic!r} on {self.bootstrap} no longer holds the offsets this stream "
                f"has read up to (checkpoint {start}, topic now {latest}). The topic was deleted, recreated "
                "or truncated (the embedded broker loses topics when it restarts). Rows already landed are "
                "safe in PostgreSQL; to continue from the topic's current beginning set "
                "failOnDataLoss=false (TXSTREAM_STREAM_FAIL_ON_DATA_LOSS=false) for one run."
            )

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        latest = self.target or self._topic_state()
        self._check_data_loss(start, latest)
        if isinstance(limit, ReadMaxRows):
            return limit_offsets(start, latest, limit.max_rows)
        if start.get("topicId") != latest["topicId"]:
            return latest
        return {
            "topicId": latest["topicId"],
            "partitions": {
                p: max(o, start["partitions"].get(p, 0)) for p, o in latest["partitions"].items()
            },
        }

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxRows(self.max_offsets_per_trigger) if self.max_offsets_per_trigger else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self.target = self._topic_state()

    def reportLatestOffset(self) -> dict | None:
        return self.last_latest

    def partitions(self, start: dict, end: dict) -> list[KafkaRange]:
        return [
            KafkaRange(self.bootstrap, self.topic, end["topicId"], partition, begin, stop, self.fail_on_data_loss)
            for partition, begin, stop in plan_ranges(start, end)
        ]

    def commit(self, end: dict) -> None:
        """Offsets live in Spark's checkpoint and in PostgreSQL; nothing to do here."""

    # --- reading (executors) ----------------------------------------------
    def read(self, partition: KafkaRange) -> Iterator[pa.RecordBatch]:
        return read_range(partition)


# One consumer per Python worker and bootstrap, reused by the tasks it runs: creating one
# (connections, metadata) costs more than reading a small micro-batch.
_consumers: dict[str, object] = {}


def _consumer(bootstrap: str):
    from confluent_kafka import Consumer

    if bootstrap not in _consumers:
        _consumers[bootstrap] = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "txstream-spark-reader",  # required by librdkafka; never joined with assign()
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",  # offsets removed by retention: start at the oldest kept
                "enable.partition.eof": True,  # tells us the end even when it is a transaction marker
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 16 * 1024 * 1024,
                "fetch.wait.max.ms": 10,
                "socket.timeout.ms": 10_000,
                # Connection failures while a broker restarts are expected; the stall timeout reports the last one.
                "log_level": 2,
            }
        )
    return _consumers[bootstrap]


def read_range(part: KafkaRange) -> Iterator[pa.RecordBatch]:
    """Every message of one partition in [start, end), as Arrow record batches.

    Reading uses confluent-kafka (librdkafka): its C record decoding reads ~3x
    faster than kafka-python's pure-Python one, and reading is this job's hot
    path. The partition is assigned explicitly; no consumer group is joined.
    Whether the topic was recreated meanwhile is checked once per batch, on the
    driver, by the sink.
    """
    from confluent_kafka import KafkaError, TopicPartition

    consumer = _consumer(part.bootstrap)
    consumer.assign([TopicPartition(part.topic, part.partition, part.start)])
    try:
        rows = _Rows(part)
        position = part.start
        last_progress = time.monotonic()
        last_error = None
        while position < part.end:
            # librdkafka returns when it has `num_messages` or the timeout passed: ask for exactly what
            # is left, or a small micro-batch would wait out the timeout on every call.
            wanted = max(1, min(RECORDS_PER_ARROW_BATCH - len(rows), part.end - position))
            messages = consumer.consume(num_messages=wanted, timeout=0.5)
            progressed = False
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise RuntimeError(f"Kafka error reading {part.topic}[{part.partition}]: {error.str()}")
                    if error.code() != KafkaError._PARTITION_EOF:
                        last_error = error.str()  # a broker away, a topic not there yet: librdkafka retries
                        continue
                    progressed = True
                    if message.offset() < part.end:
                        # The partition ends before offsets planned from its high watermark: they are gone.
                        if part.fail_on_data_loss:
                            raise DataLossError(
                                f"{part.topic}[{part.partition}] ends at offset {message.offset()} but this batch was "
                                f"planned up to {part.end}: the topic lost messages (recreated or truncated)."
                            )
                        position = part.end
                        break
                    position = max(position, message.offset())
                    continue
                progressed = True
                if message.offset() >= part.end:
                    position = part.end
                    break
                rows.add(message)
                position = message.offset() + 1
            if progressed:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > STALL_TIMEOUT_S:
                raise TimeoutError(
                    f"Kafka returned nothing for {part.topic}[{part.partition}] at offset {position} for "
                    f"{STALL_TIMEOUT_S} s (expected messages up to {part.end}; last error: {last_error}); "
                    "is the broker up?"
                )
            if len(rows) >= RECORDS_PER_ARROW_BATCH:
                yield rows.flush()
        if len(rows):
            yield rows.flush()
    except BaseException:
        _consumers.pop(part.bootstrap, None)
        consumer.close()  # its state is unknown after a failure: the next task starts afresh
        raise
    else:
        consumer.unassign()


class _Rows:
    """Column buffers for one Arrow batch; headers are built as a list<struct> without Python dicts."""

    def __init__(self, part: KafkaRange):
        self.part = part
        self.clear()

    def clear(self) -> None:
        self.keys, self.values, self.offsets, self.timestamps, self.timestamp_types = [], [], [], [], []
        self.header_keys, self.header_values, self.header_offsets = [], [], [0]

    def __len__(self) -> int:
        return len(self.offsets)

    def add(self, message) -> None:
        self.keys.append(message.key())
        self.values.append(message.value())
        self.offsets.append(message.offset())
        timestamp_type, timestamp_ms = message.timestamp()
        self.timestamps.append(timestamp_ms * 1000)
        self.timestamp_types.append(timestamp_type - 1)  # librdkafka counts from 1; Spark, like Kafka, from 0
        for key, value in message.headers() or ():
            self.header_keys.append(key)
            self.header_values.append(value)
        self.header_offsets.append(len(self.header_keys))

    def flush(self) -> pa.RecordBatch:
        n = len(self)
        headers = pa.ListArray.from_arrays(
            pa.array(self.header_offsets, pa.int32()),
            pa.StructArray.from_arrays(
                [pa.array(self.header_keys, pa.string()), pa.array(self.header_values, pa.binary())],
                names=["key", "value"],
            ),
            type=KAFKA_SOURCE_SCHEMA.field("headers").type,
        )
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array(self.keys, pa.binary()),
                pa.array(self.values, pa.binary()),
                pa.repeat(pa.scalar(self.part.topic, pa.string()), n),
                pa.repeat(pa.scalar(self.part.partition, pa.int32()), n),
                pa.array(self.offsets, pa.int64()),
                pa.array(self.timestamps, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                pa.array(self.timestamp_types, pa.int32()),
                headers,
                pa.repeat(pa.scalar(self.part.topic_id, pa.string()), n),
            ],
            schema=KAFKA_SOURCE_SCHEMA,
        )
        self.clear()
        return batch


class KafkaDataSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return SOURCE_NAME

    def schema(self) -> str:
        return KAFKA_SOURCE_DDL

    def streamReader(self, schema) -> KafkaStreamReader:
        return KafkaStreamReader(self.options)  # case-insensitive, like Spark's own options
