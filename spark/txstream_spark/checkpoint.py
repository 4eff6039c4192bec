"""The Spark checkpoint: writable before the first batch, and never trusted over PostgreSQL.

PostgreSQL is where the stream resumes. Every applied batch advances
`ops.stream_offsets` in the same transaction as its rows, so the database always
knows exactly what landed; Spark's checkpoint only knows what Spark committed. When
they disagree (a database restored from a backup is behind the checkpoint; a
checkpoint deleted, or restored, or one batch behind after a crash) the
checkpoint is set aside and a new query starts at the database's offsets: nothing
is skipped, nothing is read twice. The query is stateless (foreachBatch, no
aggregation), so a checkpoint holds nothing else worth keeping.

A checkpoint written for another incarnation of the topic (deleted and created
again under the same name) is refused instead: which of the two the operator
wants is for them to say (`txstream stream reset`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from txstream_spark.kafka_topic import TopicDescription
from txstream_spark.preflight import LandedOffsets, PreflightError


@dataclass(frozen=True)
class ResumePlan:
    starting_offsets: str  # what a new query is given: earliest | latest | Spark's per-partition JSON
    set_aside: bool  # move the existing checkpoint away first, so the query is new
    reason: str  # for the log


def decide_resume(
    topic: TopicDescription,
    checkpoint_offsets: dict[int, int] | None,
    checkpoint_exists: bool,
    landed: LandedOffsets,
    default_start: str,
) -> ResumePlan:
    """Where the stream resumes, PostgreSQL's offsets winning over the checkpoint's. Pure.

    `checkpoint_offsets`: where the checkpoint resumes (its last committed batch's end offsets), None when
    it committed none; `landed`: what PostgreSQL holds; `default_start`: earliest | latest, for a topic
    nothing has landed from.
    """
    if landed.topic_id not in (None, "", topic.topic_id):
        if checkpoint_exists:
            raise PreflightError(
                f"Kafka topic {topic.name!r} was deleted and created again since the stream last landed from it "
                f"(id {landed.topic_id} → {topic.topic_id}): the checkpoint holds offsets of the old topic. "
                "To read the new topic from its start, run `txstream stream reset` (the rows already landed stay)."
            )
        landed = LandedOffsets(topic.topic_id, {})  # a new topic: nothing of it has landed
    database = {p: o for p, o in landed.next_offsets.items() if o > 0}
    if not database:
        if checkpoint_offsets and any(checkpoint_offsets.values()):
            return ResumePlan(
                "earliest",
                True,
                "PostgreSQL holds no offsets for this topic but the checkpoint does "
                "(database restored?): reading the topic from its start",
            )
        return ResumePlan(default_start, checkpoint_exists, f"nothing landed yet: starting at {default_start}")
    checkpoint = {p: o for p, o in (checkpoint_offsets or {}).items() if o > 0}
    if checkpoint == database:
        return ResumePlan(default_start, False, "resuming the checkpoint, which agrees with PostgreSQL")
    starting = {str(p): database.get(p, -2) for p in range(topic.partitions)}  # -2: the partition's earliest
    return ResumePlan(
        json.dumps({topic.name: starting}),
        checkpoint_exists,
        f"resuming from PostgreSQL's offsets {database} "
        + (f"(the checkpoint said {checkpoint or 'nothing committed'})" if checkpoint_exists else "(no checkpoint)"),
    )


# --- the checkpoint on its file system (local paths and cluster URIs alike) ----------------------


def _checkpoint_fs(spark, checkpoint: str):
    """(Hadoop FileSystem, Path) of the checkpoint: local paths and cluster URIs (hdfs://, s3a://) alike."""
    jvm = spark._jvm  # noqa: SLF001 - PySpark has no public handle on Hadoop's FileSystem
    path = jvm.org.apache.hadoop.fs.Path(checkpoint)
    return path.getFileSystem(spark._jsc.hadoopConfiguration()), path  # noqa: SLF001


def _child(spark, parent, name: str):
    return spark._jvm.org.apache.hadoop.fs.Path(parent, name)  # noqa: SLF001


def check_writable(spark, checkpoint: str) -> None:
    """PreflightError when the checkpoint cannot be written: Spark would fail only after reading the first batch."""
    fs, path = _checkpoint_fs(spark, checkpoint)
    probe = _child(spark, path, ".txstream-write-probe")
    try:
        fs.mkdirs(path)
        fs.create(probe, True).close()
        fs.delete(probe, False)
    except Exception as exc:  # noqa: BLE001 - Hadoop's IOExceptions reach us as Py4J errors
        reason = str(exc).strip().splitlines()[0][:300]
        raise PreflightError(
            f"Cannot write the Spark checkpoint {checkpoint} (TXSTREAM_SPARK_CHECKPOINT_DIR): {reason}. "
            "Make it writable by the user running the stream, or point TXSTREAM_SPARK_CHECKPOINT_DIR elsewhere."
        ) from None


def committed_offsets(spark, checkpoint: str, topic: str) -> dict[int, int] | None:
    """Where the checkpoint resumes: the end offsets of its last committed batch; None when it committed none.

    Spark writes `offsets/<batch>` (a version line, a metadata line, then one JSON line per source:
    {"<topic>": {"<partition>": <next offset>}}) before a batch and `commits/<batch>` after it.
    """
    fs, path = _checkpoint_fs(spark, checkpoint)
    commits = _child(spark, path, "commits")
    if not fs.exists(commits):
        return None
    batches = [int(s.getPath().getName()) for s in fs.listStatus(commits) if s.getPath().getName().isdigit()]
    if not batches:
        return None
    stream = fs.open(_child(spark, _child(spark, path, "offsets"), str(max(batches))))
    try:
        lines = spark._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8").splitlines()  # noqa: SLF001
    finally:
        stream.close()
    offsets = json.loads(lines[2]).get(topic, {})
    return {int(partition): int(offset) for partition, offset in offsets.items()}


def resume_plan(
    spark, checkpoint: str, topic: TopicDescription, landed: LandedOffsets, default_start: str
) -> ResumePlan:
    fs, path = _checkpoint_fs(spark, checkpoint)
    exists = fs.exists(_child(spark, path, "offsets"))
    return decide_resume(
        topic, committed_offsets(spark, checkpoint, topic.name) if exists else None, exists, landed, default_start
    )


def set_aside(spark, checkpoint: str) -> str:
    """Rename the checkpoint to `<checkpoint>.superseded-<UTC time>` (kept for inspection); the new name."""
    fs, path = _checkpoint_fs(spark, checkpoint)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = f"{checkpoint.rstrip('/')}.superseded-{stamp}"
    if not fs.rename(path, spark._jvm.org.apache.hadoop.fs.Path(target)):  # noqa: SLF001
        raise PreflightError(
            f"Could not move the checkpoint {checkpoint} aside to {target}: move or delete it by hand."
        )
    return target
