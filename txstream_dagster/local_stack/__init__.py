"""The embedded local default: PostgreSQL and Apache Kafka, started by txstream itself."""

from txstream_dagster.local_stack.stack import LocalStack, StackNotRunning

__all__ = ["LocalStack", "StackNotRunning"]
