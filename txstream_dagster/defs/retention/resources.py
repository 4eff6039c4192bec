"""How long txstream keeps its logs and its quarantine: TXSTREAM_RECONCILE_DAYS, _OPS_RETENTION_DAYS,
_QUARANTINE_RETENTION_DAYS (settings.py validates that both retentions cover the reconciliation window)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these may go. Every cutoff is at or before `reconciliation` (the window's start)."""

    reconciliation: datetime
    ops: datetime
    quarantine: datetime


class RetentionPolicy(dg.ConfigurableResource):
    """Days each kind of row is kept. Reconciliation compares the last `reconcile_days` days, so nothing newer is
    ever deleted, whatever the other two say."""

    reconcile_days: int = 35
    ops_retention_days: int = 90
    quarantine_retention_days: int = 180

    def cutoffs(self, now: datetime) -> Cutoffs:
        reconciliation = now - timedelta(days=self.reconcile_days)
        return Cutoffs(
            reconciliation=reconciliation,
            ops=min(reconciliation, now - timedelta(days=self.ops_retention_days)),
            quarantine=min(reconciliation, now - timedelta(days=self.quarantine_retention_days)),
        )
