"""Messages for benchmarks: Stripe-shaped charges, as the producer would send them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson

from txstream_spark.event_contract import message_headers

CHARGE = json.loads((Path(__file__).parents[1] / "tests" / "fixtures" / "stripe" / "charge.json").read_text())


def charge_messages(count: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    now_ms = int(time.time() * 1000)
    messages = []
    for i in range(count):
        obj = {**CHARGE, "id": f"ch_bench_{i:08d}", "amount": 100 + i % 10_000, "created": now_ms // 1000 - i % 86_400}
        messages.append((obj["id"].encode(), orjson.dumps(obj), message_headers("charge", "synthetic", now_ms + i)))
    return messages


def synthetic_messages(count: int, seed: int = 7) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """`count` messages from the synthetic Stripe generator (charges, refunds, disputes), as published."""
    from itertools import islice

    from txstream_dagster.defs.stripe_source.publisher import encode
    from txstream_dagster.defs.stripe_source.synthetic_charges import SyntheticStripe

    now_ms = int(time.time() * 1000)
    versions = SyntheticStripe(seed).stream(now_ms, charges_per_second=1000)
    return [(m.key, m.value, m.headers) for m in (encode(v, "synthetic") for v in islice(versions, count))]
