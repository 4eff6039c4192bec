"""Fetch Spark's Kafka connector, matching the Spark in a jars folder, at image build time.

    python fetch_kafka_connector.py --jars-dir /opt/spark/jars

Spark's binary distribution (and the pyspark wheel) leaves the Kafka connector
out. `spark-submit --packages` would resolve it at every start, from the
internet, as whoever runs the job; we bake it into the images instead.

The connector's own dependencies are not pinned here: their versions are read
from the `spark-parent` POM of the same Spark release, the way Maven resolves
them, so the only input is the Spark version (read from the jars folder
itself). Everything else the connector needs at run time (lz4, snappy,
zstd-jni, slf4j, jsr305) already ships with Spark. Every jar is checked
against the repository's SHA-1.

Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REPOSITORY = "https://repo1.maven.org/maven2"
POM_NAMESPACE = {"pom": "http://maven.apache.org/POM/4.0.0"}
SPARK_CORE_JAR = re.compile(r"^spark-core_(?P<scala>\d+\.\d+)-(?P<version>.+)\.jar$")
PROPERTY_REFERENCE = re.compile(r"\$\{([^}]+)\}")


class ConnectorFetchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}.jar"

    def path(self, extension: str = "jar") -> str:
        return f"{self.group.replace('.', '/')}/{self.name}/{self.version}/{self.name}-{self.version}.{extension}"


@dataclass(frozen=True)
class SparkBuild:
    version: str
    scala: str


def spark_build_of(jars_dir: Path) -> SparkBuild:
    """The Spark and Scala versions of the distribution whose jars are in `jars_dir`."""
    builds = {
        SparkBuild(match["version"], match["scala"])
        for match in map(SPARK_CORE_JAR.match, (path.name for path in jars_dir.glob("spark-core_*.jar")))
        if match
    }
    if len(builds) != 1:
        raise ConnectorFetchError(
            f"Expected exactly one spark-core jar in {jars_dir}, found {sorted(b.version for b in builds) or 'none'}: "
            "point --jars-dir at the jars folder of one Spark distribution ($SPARK_HOME/jars or pyspark/jars)."
        )
    return builds.pop()


def pom_properties(pom_xml: str) -> dict[str, str]:
    """The <properties> of a POM, with ${...} references between them resolved."""
    root = ET.fromstring(pom_xml)
    raw = {
        element.tag.split("}", 1)[-1]: (element.text or "").strip()
        for element in root.findall("pom:properties/*", POM_NAMESPACE)
    }

    def resolve(name: str, seen: tuple[str, ...] = ()) -> str:
        if name in seen:
            raise ConnectorFetchError(f"POM property {name!r} refers to itself via {' → '.join(seen)}")
        if name not in raw:
            raise ConnectorFetchError(f"POM property {name!r} is not defined in spark-parent")
        return PROPERTY_REFERENCE.sub(lambda ref: resolve(ref.group(1), (*seen, name)), raw[name])

    return {name: resolve(name) for name in raw}


def connector_artifacts(spark: SparkBuild, parent_pom_xml: str) -> list[Artifact]:
    """The jars that put `format("kafka")` on a Spark classpath, as spark-sql-kafka's POM declares them."""
    properties = pom_properties(parent_pom_xml)
    missing = [name for name in ("kafka.version", "commons-pool2.version") if name not in properties]
    if missing:
        raise ConnectorFetchError(f"spark-parent {spark.version} defines no {', '.join(missing)}")
    return [
        Artifact("org.apache.spark", f"spark-sql-kafka-0-10_{spark.scala}", spark.version),
        Artifact("org.apache.spark", f"spark-token-provider-kafka-0-10_{spark.scala}", spark.version),
        Artifact("org.apache.kafka", "kafka-clients", properties["kafka.version"]),
        Artifact("org.apache.commons", "commons-pool2", properties["commons-pool2.version"]),
    ]


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except OSError as exc:
        raise ConnectorFetchError(f"Cannot download {url}: {exc}. Check the network or --repository.") from None


def download(artifact: Artifact, repository: str, jars_dir: Path) -> Path:
    """Download one jar into `jars_dir` after checking it against the repository's SHA-1."""
    url = f"{repository.rstrip('/')}/{artifact.path()}"
    content = _get(url)
    expected = _get(f"{url}.sha1").decode().split()[0].lower()
    actual = hashlib.sha1(content).hexdigest()  # noqa: S324 - Maven Central publishes SHA-1 checksums
    if actual != expected:
        raise ConnectorFetchError(f"{url} has SHA-1 {actual}, the repository says {expected}: refusing to install it.")
    target = jars_dir / artifact.file_name
    target.write_bytes(content)
    return target


def fetch(jars_dir: Path, repository: str = DEFAULT_REPOSITORY) -> list[Path]:
    spark = spark_build_of(jars_dir)
    parent = Artifact("org.apache.spark", f"spark-parent_{spark.scala}", spark.version)
    parent_pom = _get(f"{repository.rstrip('/')}/{parent.path('pom')}").decode()
    return [download(artifact, repository, jars_dir) for artifact in connector_artifacts(spark, parent_pom)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jars-dir", type=Path, required=True, help="$SPARK_HOME/jars or pyspark/jars")
    parser.add_argument("--repository", default=DEFAULT_REPOSITORY, help="Maven repository (a mirror works)")
    args = parser.parse_args(argv)
    try:
        for path in fetch(args.jars_dir, args.repository):
            print(f"installed {path}")
    except ConnectorFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
