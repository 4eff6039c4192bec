"""Open the Kafka topic as a streaming DataFrame: Spark's connector when present, else ours."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from txstream_spark.kafka_source import SOURCE_NAME, KafkaDataSource

NATIVE_KAFKA_PROVIDER = "org.apache.spark.sql.kafka010.KafkaSourceProvider"


def connector_on_classpath(spark: SparkSession) -> bool:
    try:
        spark._jvm.java.lang.Class.forName(NATIVE_KAFKA_PROVIDER)  # noqa: SLF001 - no public probe exists
        return True
    except Exception:  # noqa: BLE001 - py4j wraps ClassNotFoundException
        return False


def choose_format(spark: SparkSession, wanted: str) -> str:
    """'kafka' (connector jar) or our Python source, per `wanted` = auto | kafka | python."""
    if wanted == "python":
        return SOURCE_NAME
    if connector_on_classpath(spark):
        return "kafka"
    if wanted == "kafka":
        raise RuntimeError(
            "TXSTREAM_SPARK_KAFKA_SOURCE=kafka but the spark-sql-kafka connector is not on Spark's classpath: "
            "add it (--packages org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version>) or use 'auto'."
        )
    return SOURCE_NAME


def read_kafka_stream(
    spark: SparkSession,
    *,
    bootstrap: str,
    topic: str,
    source_format: str,
    starting_offsets: str,
    max_offsets_per_trigger: int,
    fail_on_data_loss: bool,
) -> DataFrame:
    if source_format == SOURCE_NAME:
        spark.dataSource.register(KafkaDataSource)
    reader = (
        spark.readStream.format(source_format)
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
        .option("failOnDataLoss", str(fail_on_data_loss).lower())
    )
    if source_format == "kafka":
        reader = reader.option("includeHeaders", "true")
    return reader.load()
