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
