# syntax=docker/dockerfile:1
# The txstream code image: the Dagster code server, webserver and daemon, and
# every run (which is also the Spark driver: the stream asset runs spark-submit
# in client mode, so this image carries Java, PySpark and the Kafka connector).
#
#   docker build -f deploy/docker/dagster.Dockerfile -t txstream-dagster .
#
# Build from the repository root. SPARK_VERSION must equal the Spark image's
# and jvm/pom.xml's spark.version: PySpark refuses executors of another version.
ARG PYTHON_VERSION=3.12
ARG PYTHON_IMAGE=python:3.12-slim-bookworm@sha256:34386ef0cb081344d7ec1c103ba398e6e9f64e9ab3a1509accc92a4e24a07258
ARG MAVEN_IMAGE=maven:3.9.9-eclipse-temurin-17@sha256:f58d59b6273e785ac0a4477f6e9b5ba1d7731c75b906c0f7b34076f1851318cc

# Spark's Kafka connector, resolved by Maven from the pom `make install` uses.
FROM ${MAVEN_IMAGE} AS jvm
COPY jvm/ /build/jvm/
RUN mvn --batch-mode --quiet -f /build/jvm/pom.xml package -Djvm.lib.dir=/build/lib

FROM ${PYTHON_IMAGE}

ARG SPARK_VERSION=4.2.0
ARG PYTHON_VERSION

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The same venv path as in the Spark image: PySpark tells executors to run
    # the driver's interpreter path (PYSPARK_PYTHON = sys.executable).
    VIRTUAL_ENV=/opt/txstream/venv \
    PATH=/opt/txstream/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    TXSTREAM_DATA_DIR=/var/lib/txstream

# Java runs the Spark driver; tini reaps the run workers Dagster forks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster --shell /usr/sbin/nologin dagster \
    && python -m venv "$VIRTUAL_ENV"

WORKDIR /opt/txstream/app

# Dependencies first, against empty packages, so a code change does not
# rebuild PySpark (a source build of about a minute). The editable install
# points at these folders; the code copied below is what gets imported.
COPY pyproject.toml README.md ./
RUN mkdir -p txstream_dagster spark/txstream_spark \
    && touch txstream_dagster/__init__.py spark/txstream_spark/__init__.py \
    && pip install -e . "pyspark[sql]==${SPARK_VERSION}"

COPY txstream_dagster ./txstream_dagster
COPY spark ./spark
COPY dbt_project ./dbt_project

# The dbt manifest the code location loads (txstream_dagster/defs/dbt/project.py),
# built once here so that loading never runs dbt. `dbt parse` needs no database:
# the profile's defaults exist for exactly this.
RUN dagster-dbt project prepare-and-package --file txstream_dagster/defs/dbt/project.py

# Next to Spark's own jars, so the driver in this image finds the Kafka source without --jars.
COPY --from=jvm /build/lib/spark-kafka/ /opt/txstream/venv/lib/python${PYTHON_VERSION}/site-packages/pyspark/jars/

COPY deploy/dagster/dagster.yaml deploy/dagster/workspace.yaml ${DAGSTER_HOME}/

# The code stays root-owned (read-only for the app); only data, Dagster's
# local files and dbt's build output are writable.
RUN mkdir -p "$TXSTREAM_DATA_DIR" /opt/dagster/compute_logs dbt_project/target dbt_project/logs \
    && chown -R dagster:dagster "$TXSTREAM_DATA_DIR" "$DAGSTER_HOME" /opt/dagster/compute_logs \
        dbt_project/target dbt_project/logs

USER dagster
EXPOSE 3000 4000
ENTRYPOINT ["tini", "--"]
CMD ["dagster", "code-server", "start", "--host", "0.0.0.0", "--port", "4000", \
     "--module-name", "txstream_dagster.definitions", "--location-name", "txstream"]
