"""The JVM artifacts `jvm/pom.xml` declares, where `make install` puts them: one folder per Maven module.

    mvn -f jvm/pom.xml package -Djvm.lib.dir=<data dir>/jvm

fills `<jvm dir>/kafka-broker/` (Apache Kafka, for the embedded broker) and
`<jvm dir>/spark-kafka/` (Spark's Kafka connector, for the streaming job).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

KAFKA_BROKER = "kafka-broker"
SPARK_KAFKA_CONNECTOR = "spark-kafka"
# A jar each module cannot work without: its presence says Maven finished resolving it.
_MAIN_JAR_PREFIX = {KAFKA_BROKER: "kafka_2.13-", SPARK_KAFKA_CONNECTOR: "spark-sql-kafka-0-10_2.13-"}


class JvmDependencyMissing(RuntimeError):
    """Java, or jars Maven should have resolved, are not there: the message says how to get them."""


def module_jars(jvm_dir: Path, module: str) -> list[Path]:
    """Every jar of `module`, sorted; JvmDependencyMissing naming the fix when it was never resolved."""
    folder = jvm_dir / module
    jars = sorted(folder.glob("*.jar"))
    if not any(jar.name.startswith(_MAIN_JAR_PREFIX[module]) for jar in jars):
        raise JvmDependencyMissing(
            f"The {module} jars are not in {folder}: run `make install` (Maven resolves jvm/pom.xml into "
            f"<data dir>/jvm), or point TXSTREAM_JVM_DIR at the folder it filled."
        )
    return jars


def java_executable() -> str:
    """`$JAVA_HOME/bin/java`, else `java` on PATH; JvmDependencyMissing saying what to install."""
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise JvmDependencyMissing(
            "Java was not found (JAVA_HOME unset or wrong, no `java` on PATH): Kafka and Spark need Java 17 or "
            "newer. Install it (`make install` does, as root; or apt install openjdk-17-jre-headless) or set JAVA_HOME."
        )
    return java
