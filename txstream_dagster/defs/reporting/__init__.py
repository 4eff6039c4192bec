"""Reporting stage: a daily KPI report rendered from the marts, for people who never open Grafana."""
