"""`txstream stream`: run the streaming job from a terminal, catch-up or continuous."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from txstream_dagster.defs.stream.offsets import fail_on_data_loss
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.settings import get_settings


@click.command("stream")
@click.option("--continuous", is_flag=True,
              help="Keep running with a processing-time trigger (lowest latency) until Ctrl-C.")
@click.option("--interval", default="500 milliseconds", show_default=True,
              help="Trigger interval in continuous mode.")
def stream(continuous: bool, interval: str) -> None:
    """Land everything in the topic and stop; with --continuous, keep landing new events as they arrive.

    The Dagster sensor does the catch-up runs by itself; this is for terminals,
    and for the long-running low-latency mode (which the sensor then reports
    instead of competing with).
    """
    settings = get_settings()
    spark = SparkResource.from_settings()
    kafka = KafkaResource(topic=settings.topic)
    command = spark.submit_command(
        bootstrap=kafka.resolved_bootstrap(),
        topic=kafka.topic,
        trigger="processing-time" if continuous else "available-now",
        fail_on_data_loss=fail_on_data_loss(settings),
        interval=interval,
    )
    env = {**os.environ, **spark.job_env(PostgresResource().resolved_url())}
    sys.exit(subprocess.run(command, env=env).returncode)
