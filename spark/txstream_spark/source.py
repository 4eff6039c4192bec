"""Open the Kafka topic as a streaming DataFrame with Spark's own Kafka source (spark-sql-kafka-0-10)."""

from __future__ import annotations

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession


class ConnectorMissing(RuntimeError):
    pass


def read_kafka_stream(
    spark: SparkSession,
    *,
    bootstrap: str,
    topic: str,
    starting_offsets: str,
    max_offsets_per_trigger: int,
    fail_on_data_loss: bool,
) -> DataFrame:
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
        .option("failOnDataLoss", str(fail_on_data_loss).lower())
        .option("includeHeaders", "true")
    )
    try:
        return reader.load()
    except AnalysisException as exc:
        if "kafka" not in str(exc).lower() or "data source" not in str(exc).lower():
            raise
        raise ConnectorMissing(
            f"Spark {spark.version} has no Kafka source: the spark-sql-kafka-0-10_2.13-{spark.version} jar is not on "
            "its classpath. Locally, `make install` resolves it (jvm/pom.xml) and txstream passes it with --jars; "
            "on a cluster, run the Spark image built from deploy/docker, which carries it."
        ) from None
