"""What every source hands the publisher: one observed version of one Stripe object."""

from __future__ import annotations

from typing import Any, NamedTuple


class ObjectVersion(NamedTuple):
    object_type: str  # one of event_contract.OBJECT_TYPES
    object_id: str  # the Kafka key: every version of an object lands on one partition
    event_time_ms: int  # when this version was observed; later versions are later
    payload: dict[str, Any]  # the object exactly as Stripe returns it
    api_version: str | None = None  # the Stripe API version that shaped `payload` (the Event's), if known
    payout_id: str | None = None  # a balance transaction listed under this payout (event_contract.HEADER_PAYOUT)
