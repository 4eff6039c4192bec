"""One day and object type: what Stripe lists as created that day against what landed. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

# Ids named in metadata and messages; the table keeps them all.
IDS_SHOWN = 20


@dataclass(frozen=True)
class DayReconciliation:
    day: date
    object_type: str
    stripe_count: int
    landed_count: int
    stripe_amounts: dict[str, int]  # currency → sum of amounts, minor units
    landed_amounts: dict[str, int]
    missing_ids: list[str]  # in Stripe; neither landed nor quarantined
    quarantined_ids: list[str]  # in Stripe; not landed, held in the quarantine
    extra_ids: list[str]  # landed; Stripe does not list them
    mismatched_ids: list[str]  # landed with another amount or currency than Stripe's

    @property
    def complete(self) -> bool:
        return not (self.missing_ids or self.quarantined_ids or self.extra_ids or self.mismatched_ids)


def _amounts(pairs: Iterable[tuple[int, str]]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for amount, currency in pairs:
        totals[currency] += amount
    return dict(sorted(totals.items()))


def compare(
    day: date,
    object_type: str,
    stripe_objects: Iterable[Mapping[str, Any]],
    landed: Mapping[str, tuple[int, str]],
    quarantined: set[str],
) -> DayReconciliation:
    """`landed`: object id → (amount, currency) in raw.transactions; `quarantined`: ids held in the quarantine."""
    in_stripe = {obj["id"]: (obj["amount"], obj["currency"]) for obj in stripe_objects}
    not_landed = sorted(set(in_stripe) - set(landed))
    return DayReconciliation(
        day=day,
        object_type=object_type,
        stripe_count=len(in_stripe),
        landed_count=len(landed),
        stripe_amounts=_amounts(in_stripe.values()),
        landed_amounts=_amounts(landed.values()),
        missing_ids=[i for i in not_landed if i not in quarantined],
        quarantined_ids=[i for i in not_landed if i in quarantined],
        extra_ids=sorted(set(landed) - set(in_stripe)),
        mismatched_ids=sorted(i for i in set(in_stripe) & set(landed) if in_stripe[i] != landed[i]),
    )


def some_ids(ids: list[str]) -> str:
    """The first IDS_SHOWN ids, and how many more."""
    shown = ", ".join(ids[:IDS_SHOWN])
    return shown + (f" … and {len(ids) - IDS_SHOWN} more" if len(ids) > IDS_SHOWN else "")
