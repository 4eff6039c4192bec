"""Alerting: failed Dagster runs recorded for Grafana's alert rules and announced on a webhook."""
