# syntax=docker/dockerfile:1
# The Spark image: master, workers and (on Kubernetes) executors, with the
# Kafka connector jars and the Python our streaming job's workers need.
#
#   docker build -f deploy/docker/spark.Dockerfile -t txstream-spark .
#
# Build from the repository root, from the same commit and with the same
# SPARK_VERSION and PYTHON_VERSION as the code image: the driver runs there,
# and PySpark refuses Python workers of another minor version.
ARG SPARK_VERSION=4.3.0
ARG UV_VERSION=0.11.7
FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM apache/spark:${SPARK_VERSION}-scala2.13-java17-ubuntu

ARG PYTHON_VERSION=3.12
ARG MAVEN_REPOSITORY=https://repo1.maven.org/maven2

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

COPY deploy/docker/fetch_kafka_connector.py /tmp/fetch_kafka_connector.py
RUN python /tmp/fetch_kafka_connector.py --jars-dir /opt/spark/jars --repository "$MAVEN_REPOSITORY" \
    && rm /tmp/fetch_kafka_connector.py

# Our job's package, importable by every Python worker through a .pth file.
COPY spark/txstream_spark /opt/txstream/spark/txstream_spark
RUN echo /opt/txstream/spark > "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/txstream_spark.pth"

USER spark
