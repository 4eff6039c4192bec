# syntax=docker/dockerfile:1
# The Spark image: master, workers and (on Kubernetes) executors, with the
# Kafka connector jars and the Python our streaming job's workers need.
#
#   docker build -f deploy/docker/spark.Dockerfile -t txstream-spark .
#
# Build from the repository root, from the same commit and with the same
# SPARK_VERSION and PYTHON_VERSION as the code image: the driver runs there,
# and PySpark refuses Python workers of another minor version. SPARK_VERSION
# is the spark.version of jvm/pom.xml, which the connector is resolved at.
ARG SPARK_VERSION=4.2.0
# Docker's official Spark image (the `spark` repository) for SPARK_VERSION, pinned by digest.
ARG SPARK_IMAGE=spark:4.2.0-scala2.13-java17-ubuntu@sha256:7feb3a7f3e3abd93d98bc8e28294ae64cd7b09eb43c73e01ea7464c5fbc1daea
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.11.7@sha256:240fb85ab0f263ef12f492d8476aa3a2e4e1e333f7d67fbdd923d00a506a516a
ARG MAVEN_IMAGE=maven:3.9.9-eclipse-temurin-17@sha256:f58d59b6273e785ac0a4477f6e9b5ba1d7731c75b906c0f7b34076f1851318cc
FROM ${UV_IMAGE} AS uv

# Spark's Kafka connector, resolved by Maven from the pom `make install` uses.
FROM ${MAVEN_IMAGE} AS jvm
COPY jvm/ /build/jvm/
RUN mvn --batch-mode --quiet -f /build/jvm/pom.xml package -Djvm.lib.dir=/build/lib

FROM ${SPARK_IMAGE}

ARG PYTHON_VERSION=3.12

USER root

# Ubuntu's python3 is older than the project's; uv installs the same minor
# version as the code image, at the same venv path (executors are told to run
# the driver's interpreter path).
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/txstream/venv \
    PATH=/opt/txstream/venv/bin:$PATH \
    PYSPARK_PYTHON=/opt/txstream/venv/bin/python \
    SPARK_WORKER_DIR=/opt/spark/work-dir

COPY deploy/docker/spark-requirements.txt /tmp/spark-requirements.txt
RUN uv python install "$PYTHON_VERSION" \
    && uv venv --python "$PYTHON_VERSION" "$VIRTUAL_ENV" \
    && uv pip install --python "$VIRTUAL_ENV/bin/python" -r /tmp/spark-requirements.txt \
    && rm /tmp/spark-requirements.txt

COPY --from=jvm /build/lib/spark-kafka/ /opt/spark/jars/

# Our job's package, importable by every Python worker through a .pth file.
COPY spark/txstream_spark /opt/txstream/spark/txstream_spark
RUN echo /opt/txstream/spark > "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/txstream_spark.pth"

USER spark
