"""Retention: the logs in ops and the quarantine, trimmed daily, never inside reconciliation's window."""
