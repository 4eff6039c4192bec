"""The embedded local default: PostgreSQL and a Kafka-compatible broker started by txstream itself."""

from txstream_dagster.local_stack.stack import LocalStack, StackNotRunning

__all__ = ["LocalStack", "StackNotRunning"]
