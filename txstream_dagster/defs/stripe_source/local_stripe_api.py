"""A Stripe-compatible API on 127.0.0.1 that lists the synthetic ledger: Stripe, in synthetic mode.

It answers the list endpoints the source reads (`GET /v1/charges`, `/v1/refunds`,
`/v1/disputes`, `/v1/payouts`, `/v1/balance_transactions`, the last also with
`payout=po_…`) as Stripe does: newest first, `created[gte|lt]`, `limit` up to 100,
`starting_after`, `has_more`, Bearer authentication and Stripe's error bodies. So
the daily reconciliation runs the very code it runs against Stripe, over what the
generator published, and the real-mode pulls can be tested against it.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from txstream_dagster.defs.stripe_source.stripe_api import LIST_PATHS

OBJECT_TYPE_OF_PATH = {path: object_type for object_type, path in LIST_PATHS.items()}
MAX_LIMIT = 100
# Stripe filters balance transactions on the payout that paid them out; no other list takes `payout`.
PAYOUT_FILTERED = "balance_transaction"


@dataclass(frozen=True)
class ListRequest:
    """One page asked of a list endpoint."""

    object_type: str
    created_gte: int
    created_lt: int
    starting_after: str | None
    limit: int
    payout: str | None = None  # balance transactions: only those paid out in this payout


# A page of objects newest first, and has_more.
PageSource = Callable[[ListRequest], tuple[list[dict[str, Any]], bool]]


def stripe_error(status: int, message: str, param: str | None = None) -> tuple[int, dict[str, Any]]:
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if param:
        error["param"] = param
    return status, {"error": error}


def list_response(path: str, params: dict[str, str], page: PageSource) -> tuple[int, dict[str, Any]]:
    """Stripe's answer to `GET path?params`. Pure but for `page`."""
    object_type = OBJECT_TYPE_OF_PATH.get(path)
    if object_type is None:
        return stripe_error(404, f"Unrecognized request URL (GET: {path}).")
    payout = params.get("payout")
    if payout is not None and object_type != PAYOUT_FILTERED:
        return stripe_error(400, "Received unknown parameter: payout", "payout")
    try:
        limit = int(params.get("limit", 10))
        gte = int(params.get("created[gte]", 0))
        lt = int(params.get("created[lt]", 2**62))
    except ValueError as exc:
        return stripe_error(400, f"Invalid integer: {exc}")
    if not 1 <= limit <= MAX_LIMIT:
        return stripe_error(400, f"Invalid integer: limit must be between 1 and {MAX_LIMIT}", "limit")
    objects, has_more = page(ListRequest(object_type, gte, lt, params.get("starting_after"), limit, payout))
    return 200, {"object": "list", "url": path, "has_more": has_more, "data": objects}


class LocalStripeApi:
    """The server, in a thread, for the duration of a `with` block; `api_key` is what it accepts."""

    def __init__(self, page: PageSource):
        self.page = page
        self.api_key = f"sk_test_local_{secrets.token_hex(8)}"
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, name="local-stripe-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> LocalStripeApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def respond(self, path: str, params: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        if authorization != f"Bearer {self.api_key}":
            return stripe_error(401, "Invalid API Key provided.")
        return list_response(path, params, self.page)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                status, body = api.respond(url.path, dict(parse_qsl(url.query)), self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # requests are not news
                pass

        return Handler
