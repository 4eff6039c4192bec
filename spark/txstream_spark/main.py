"""The streaming job: Kafka → transform → PostgreSQL. Entry point for spark-submit.

    spark-submit [--master …] spark/txstream_spark/main.py --topic stripe.events \\
        --bootstrap kafka:9092 --checkpoint /data/checkpoints/stripe.events --trigger available-now

The warehouse URL is read from the TXSTREAM_POSTGRES_URL environment variable,
never from the command line (command lines show up in `ps` and the Spark UI); it signs
in as the txstream_writer login, which may write raw and ops and nothing else.
Launched by Dagster (Pipes), it streams its logs and a materialization of
`raw_transactions` back to the run; launched by hand, it prints a summary.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass

from txstream_spark.event_contract import check_topic_name
from txstream_spark.preflight import PreflightError, check_broker, check_warehouse, landed_offsets
from txstream_spark.reporting import JobReporter

POSTGRES_URL_ENV = "TXSTREAM_POSTGRES_URL"
EXIT_PREFLIGHT_FAILED = 2
EXIT_ALREADY_RUNNING = 3
EXIT_STREAM_FAILED = 4
# Our own errors raised inside a batch reach the driver wrapped in Spark's and Py4J's traces.
_OWN_FAILURE = re.compile(r"\b(?:TopicRecreated|SinkUnavailable|WriterLost): (.+)")


class StreamFailed(RuntimeError):
    pass


def failure_reason(error_text: str) -> str:
    """The line of a StreamingQueryException that says what went wrong: ours if it is ours, else Spark's first. Pure."""
    own = _OWN_FAILURE.findall(error_text)
    if own:
        return own[-1].strip()
    lines = [line.strip() for line in error_text.strip().splitlines() if line.strip()]
    return lines[0][:500] if lines else "the streaming query stopped with an error"


@dataclass(frozen=True)
class StreamConfig:
    bootstrap: str
    topic: str
    checkpoint: str
    trigger: str  # available-now | processing-time
    interval: str
    starting_offsets: str
    max_offsets_per_trigger: int
    fail_on_data_loss: bool
    master: str | None


def parse_args(argv: list[str] | None = None) -> StreamConfig:
    parser = argparse.ArgumentParser(prog="txstream-stream", description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port[,host:port]")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--checkpoint", required=True, help="Spark checkpoint directory (local path or a URI)")
    # No defaults: whoever submits the job (txstream's Spark resource) decides every setting, once.
    parser.add_argument(
        "--trigger",
        choices=["available-now", "processing-time"],
        required=True,
        help="available-now: catch up, then stop. processing-time: run until stopped.",
    )
    parser.add_argument("--interval", required=True, help="processing-time trigger interval")
    parser.add_argument(
        "--starting-offsets",
        choices=["earliest", "latest"],
        required=True,
        help="where a new checkpoint starts (earliest: nothing produced before is lost)",
    )
    parser.add_argument("--max-offsets-per-trigger", type=int, required=True)
    parser.add_argument("--fail-on-data-loss", choices=["true", "false"], required=True)
    parser.add_argument("--master", default=None, help="only when not set by spark-submit")
    args = parser.parse_args(argv)
    try:
        check_topic_name(args.topic, "--topic")
    except ValueError as exc:
        parser.error(str(exc))
    return StreamConfig(
        bootstrap=args.bootstrap,
        topic=args.topic,
        checkpoint=args.checkpoint,
        trigger=args.trigger,
        interval=args.interval,
        starting_offsets=args.starting_offsets,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        fail_on_data_loss=args.fail_on_data_loss == "true",
        master=args.master,
    )


def build_session(config: StreamConfig):
    from pyspark.sql import SparkSession

    # Spark's Python workers must run this interpreter, or they won't see its packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(f"txstream-stream[{config.topic}]")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
    )
    if config.master:
        builder = builder.master(config.master)
    return builder.getOrCreate()


def run(config: StreamConfig, postgres_url: str, reporter: JobReporter) -> int:
    from pyspark.errors import StreamingQueryException

    from txstream_spark.checkpoint import check_writable, resume_plan, set_aside
    from txstream_spark.kafka_topic import TopicWatch
    from txstream_spark.sink import PostgresSink
    from txstream_spark.source import ConnectorMissing, read_kafka_stream
    from txstream_spark.transform import transform_batches

    check_warehouse(postgres_url)
    topic = check_broker(config.bootstrap, config.topic)
    topic_watch = TopicWatch(config.bootstrap, config.topic, topic.topic_id)
    # source → transform → sink: the sink runs the transform in its Spark tasks, which COPY the
    # result straight to PostgreSQL (see sink.py), so rows never gather on the driver.
    sink = PostgresSink(
        postgres_url,
        config.topic,
        functools.partial(transform_batches, topic_id=topic.topic_id),
        on_batch=reporter.batch_committed,
        log=reporter.log,
        topic_watch=topic_watch,
    )
    if not sink.claim():
        reporter.log(
            f"Another stream query is already writing topic {config.topic}; nothing to do "
            "(its rows land in the same tables)."
        )
        return EXIT_ALREADY_RUNNING
    try:
        spark = build_session(config)
        spark.sparkContext.setLogLevel("WARN")
        check_writable(spark, config.checkpoint)
        plan = resume_plan(
            spark, config.checkpoint, topic, landed_offsets(postgres_url, config.topic), config.starting_offsets
        )
        if plan.set_aside:
            reporter.log(f"checkpoint moved to {set_aside(spark, config.checkpoint)}")
        reporter.log(
            f"reading {config.topic} (id {topic.topic_id}, {topic.partitions} partitions) from "
            f"{config.bootstrap}: {plan.reason}"
        )
        try:
            messages = read_kafka_stream(
                spark,
                bootstrap=config.bootstrap,
                topic=config.topic,
                starting_offsets=plan.starting_offsets,
                max_offsets_per_trigger=config.max_offsets_per_trigger,
                fail_on_data_loss=config.fail_on_data_loss,
            )
        except ConnectorMissing as exc:
            raise PreflightError(str(exc)) from None
        writer = messages.writeStream.foreachBatch(sink).option("checkpointLocation", config.checkpoint)
        if config.trigger == "available-now":
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=config.interval)
        query = writer.queryName(f"txstream_{config.topic}".replace(".", "_").replace("-", "_")).start()
        _stop_on_signals(query)
        try:
            query.awaitTermination()
        except StreamingQueryException as exc:
            raise StreamFailed(_topic_gone(topic_watch) or failure_reason(str(exc))) from None
    finally:
        sink.close()
    return 0


def _topic_gone(topic_watch) -> str | None:
    """Why the query failed, when it is that the topic was deleted under it (Spark only says a partition is
    unknown, or that data may have been lost)."""
    from txstream_spark.kafka_topic import TopicRecreated

    try:
        topic_watch.check()
    except TopicRecreated as gone:
        return str(gone)
    except Exception:  # noqa: BLE001 - Kafka unreachable now: keep Spark's own reason
        return None
    finally:
        topic_watch.close()
    return None


def _stop_on_signals(query) -> None:
    """SIGTERM/SIGINT stop the query (a batch in flight is replayed on restart).

    The handler runs on the main thread, which is inside a Py4J call
    (awaitTermination): the stop goes through another thread's connection.
    """

    def stop(signum, _frame):
        threading.Thread(target=query.stop, name="txstream-stop", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    postgres_url = os.environ.get(POSTGRES_URL_ENV)
    # A catch-up run logs every batch; a query that runs until stopped, at most every 10 s.
    with JobReporter(config.topic, log_every_s=10 if config.trigger == "processing-time" else 0) as reporter:
        if not postgres_url:
            reporter.fail(f"{POSTGRES_URL_ENV} is not set: the job reads the warehouse URL from it.")
            return EXIT_PREFLIGHT_FAILED
        started = time.monotonic()
        try:
            code = run(config, postgres_url, reporter)
        except PreflightError as exc:
            reporter.fail(str(exc))
            return EXIT_PREFLIGHT_FAILED
        except StreamFailed as exc:
            reporter.fail(str(exc))
            return EXIT_STREAM_FAILED
        if code == 0:
            reporter.finish(time.monotonic() - started)
        return code


if __name__ == "__main__":
    sys.exit(main())
