"""`txstream stream`: run the streaming job from a terminal, catch-up or continuous; reset its checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import click

from txstream_dagster.cli.output import settings_or_exit


@click.group("stream", invoke_without_command=True)
@click.option(
    "--continuous", is_flag=True, help="Keep running with a processing-time trigger (lowest latency) until Ctrl-C."
)
@click.option("--interval", default="500 milliseconds", show_default=True, help="Trigger interval in continuous mode.")
@click.pass_context
def stream(ctx: click.Context, continuous: bool, interval: str) -> None:
    """Land everything in the topic and stop; with --continuous, keep landing new events as they arrive.

    The Dagster sensor does the catch-up runs by itself; this is for terminals,
    and for the long-running low-latency mode (which the sensor then reports
    instead of competing with).
    """
    if ctx.invoked_subcommand is not None:
        return
    from txstream_dagster.resources.build import event_log, spark, warehouse

    settings = settings_or_exit()
    job, kafka = spark(settings), event_log(settings)
    command = job.submit_command(
        bootstrap=kafka.bootstrap,
        topic=kafka.topic,
        trigger="processing-time" if continuous else "available-now",
        interval=interval,
    )
    env = {**os.environ, **job.job_env(warehouse(settings))}
    sys.exit(subprocess.run(command, env=env).returncode)


@stream.command("reset")
def reset() -> None:
    """Set the stream's checkpoint aside, so the next run reads the topic from TXSTREAM_STREAM_STARTING_OFFSETS.

    For a topic deleted and created again: its old checkpoint holds offsets of a
    topic that no longer exists. The rows already landed stay; what the new topic
    holds is read from its start (earliest) and deduplicated against them.
    """
    from txstream_dagster.defs.stream.offsets import stream_running
    from txstream_dagster.resources.build import spark, warehouse

    settings = settings_or_exit()
    topic = settings.topic
    checkpoint = spark(settings).checkpoint_for(topic)
    if stream_running(warehouse(settings), topic):
        raise RuntimeError(f"A stream query is running on {checkpoint}: stop it first, then reset.")
    if urlsplit(checkpoint).scheme not in ("", "file"):
        raise RuntimeError(
            f"{checkpoint} is not on this machine: delete it with your storage's tools, then run the stream."
        )
    path = Path(urlsplit(checkpoint).path)
    if not path.exists():
        click.echo(f"No checkpoint at {path}: the next run starts from TXSTREAM_STREAM_STARTING_OFFSETS already.")
        return
    aside = path.with_name(f"{path.name}.reset-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    path.rename(aside)
    click.echo(f"Checkpoint moved to {aside}; the next stream run starts from TXSTREAM_STREAM_STARTING_OFFSETS.")
