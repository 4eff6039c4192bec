"""The Spark checkpoint: writable before the first batch, and never resumed on another incarnation of the topic."""

from __future__ import annotations

from txstream_spark.preflight import PreflightError


def _checkpoint_fs(spark, checkpoint: str):
    """(Hadoop FileSystem, Path) of the checkpoint: local paths and cluster URIs (hdfs://, s3a://) alike."""
    jvm = spark._jvm  # noqa: SLF001 - PySpark has no public handle on Hadoop's FileSystem
    path = jvm.org.apache.hadoop.fs.Path(checkpoint)
    return path.getFileSystem(spark._jsc.hadoopConfiguration()), path  # noqa: SLF001


def check_writable(spark, checkpoint: str) -> None:
    """PreflightError when the checkpoint cannot be written: Spark would fail only after reading the first batch."""
    fs, path = _checkpoint_fs(spark, checkpoint)
    probe = spark._jvm.org.apache.hadoop.fs.Path(path, ".txstream-write-probe")  # noqa: SLF001
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


def check_same_topic(spark, checkpoint: str, topic: str, topic_id: str, landed_id: str | None) -> None:
    """A checkpoint written while reading another incarnation of the topic must not be resumed: its
    offsets would skip (or re-read) messages of the new topic. PostgreSQL knows which incarnation landed."""
    fs, path = _checkpoint_fs(spark, checkpoint)
    resuming = fs.exists(spark._jvm.org.apache.hadoop.fs.Path(path, "offsets"))  # noqa: SLF001
    if resuming and landed_id and landed_id != topic_id:
        raise PreflightError(
            f"Kafka topic {topic!r} was deleted and created again since the stream last landed from it "
            f"(id {landed_id} → {topic_id}): the checkpoint {checkpoint} holds offsets of the old topic. "
            "To read the new topic from its start, run `txstream stream reset` (the rows already landed stay)."
        )
