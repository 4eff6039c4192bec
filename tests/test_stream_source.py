"""Which Kafka source the job reads with: Spark's connector jar when it is there, else ours.

A real SparkSession would only answer "is the jar on the classpath?"; a stub of
the JVM's class lookup answers it both ways in microseconds.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from txstream_spark.kafka_source import SOURCE_NAME
from txstream_spark.source import NATIVE_KAFKA_PROVIDER, choose_format, connector_on_classpath


class JavaClasses:
    """`spark._jvm.java.lang.Class`: forName finds only the classes given."""

    def __init__(self, *present: str):
        self.present = set(present)
        self.asked: list[str] = []

    def forName(self, name: str):  # noqa: N802 - Java's name
        self.asked.append(name)
        if name not in self.present:
            raise RuntimeError(f"java.lang.ClassNotFoundException: {name}")  # what py4j's error says
        return name


def session(classes: JavaClasses):
    return SimpleNamespace(_jvm=SimpleNamespace(java=SimpleNamespace(lang=SimpleNamespace(Class=classes))))


def test_the_connector_is_found_by_its_provider_class():
    classes = JavaClasses(NATIVE_KAFKA_PROVIDER)
    assert connector_on_classpath(session(classes))
    assert classes.asked == [NATIVE_KAFKA_PROVIDER]
    assert not connector_on_classpath(session(JavaClasses()))


def test_auto_reads_with_the_connector_when_the_jar_is_there():
    assert choose_format(session(JavaClasses(NATIVE_KAFKA_PROVIDER)), "auto") == "kafka"


def test_auto_falls_back_to_our_python_source_without_the_jar():
    assert choose_format(session(JavaClasses()), "auto") == SOURCE_NAME


def test_python_is_used_when_asked_even_with_the_jar_there():
    classes = JavaClasses(NATIVE_KAFKA_PROVIDER)
    assert choose_format(session(classes), "python") == SOURCE_NAME
    assert classes.asked == []  # no need to ask the JVM


def test_kafka_reads_with_the_connector_when_the_jar_is_there():
    assert choose_format(session(JavaClasses(NATIVE_KAFKA_PROVIDER)), "kafka") == "kafka"


def test_kafka_without_the_jar_fails_naming_the_setting_and_the_missing_package():
    with pytest.raises(RuntimeError, match=r"TXSTREAM_SPARK_KAFKA_SOURCE=kafka") as failure:
        choose_format(session(JavaClasses()), "kafka")
    assert "org.apache.spark:spark-sql-kafka-0-10" in str(failure.value)
    assert "'auto'" in str(failure.value)
