"""Helpers for the Stripe source tests: Stripe's object shapes, a topic reader, and a local Stripe API.

`FakeStripe` is a real HTTP server (http.server in a thread) that speaks the parts
of Stripe's API the source uses: `GET /v1/events` (the last 30 days only, as Stripe
keeps them) and the list endpoints of charges, refunds, disputes, payouts and
balance transactions (each object as it is now; balance transactions also by
`payout=po_…`), newest first, with `created[gte|lt]`, `types[]`, `limit`,
`starting_after`, `has_more`; `POST /v1/charges` and
`POST /v1/refunds` (with idempotency keys), Bearer authentication and Stripe's
error bodies. Faults are scripted per request number (of all requests, or of one path's).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kafka import TopicPartition

from txstream_dagster.defs.stripe_source.cursors import CursorStore
from txstream_dagster.defs.stripe_source.local_stripe_api import OBJECT_TYPE_OF_PATH, PAYOUT_FILTERED
from txstream_dagster.defs.stripe_source.resources import StripeResource
from txstream_dagster.defs.stripe_source.stripe_api import (
    EVENT_RETENTION_DAYS,
    balance_transactions_stream,
    cursor_stream,
)
from txstream_dagster.resources import KafkaResource, PostgresResource

STRIPE_FIXTURES = Path(__file__).parent / "fixtures" / "stripe"


def stripe_fixture(name: str) -> dict[str, Any]:
    return json.loads((STRIPE_FIXTURES / f"{name}.json").read_text())


# --- Stripe's shapes ---------------------------------------------------------------
# Where Stripe's example shows null, the type Stripe sends when there is a value
# (from Stripe's OpenAPI spec). A generated value there must be null or this type.
S, INT = str, int
TYPES_WHERE_EXAMPLE_IS_NULL: dict[str, dict[str, type]] = {
    "charge": {
        "application": S,
        "application_fee": S,
        "application_fee_amount": INT,
        "billing_details.address.city": S,
        "billing_details.address.country": S,
        "billing_details.address.line1": S,
        "billing_details.address.line2": S,
        "billing_details.address.postal_code": S,
        "billing_details.address.state": S,
        "billing_details.email": S,
        "billing_details.phone": S,
        "billing_details.tax_id": S,
        "calculated_statement_descriptor": S,
        "customer": S,
        "failure_balance_transaction": S,
        "failure_code": S,
        "failure_message": S,
        "on_behalf_of": S,
        "outcome.advice_code": S,
        "outcome.network_advice_code": S,
        "outcome.network_decline_code": S,
        "outcome.network_status": S,
        "outcome.reason": S,
        "outcome.seller_message": S,
        "payment_intent": S,
        "payment_method_details.card.amount_authorized": INT,
        "payment_method_details.card.authorization_code": S,
        "payment_method_details.card.checks.address_line1_check": S,
        "payment_method_details.card.checks.address_postal_code_check": S,
        "payment_method_details.card.installments.plan.count": INT,
        "payment_method_details.card.installments.plan.interval": S,
        "payment_method_details.card.mandate": S,
        "payment_method_details.card.network_transaction_id": S,
        "payment_method_details.card.regulated_status": S,
        "payment_method_details.card.three_d_secure.authentication_flow": S,
        "payment_method_details.card.three_d_secure.electronic_commerce_indicator": S,
        "payment_method_details.card.three_d_secure.exemption_indicator": S,
        "payment_method_details.card.three_d_secure.result": S,
        "payment_method_details.card.three_d_secure.result_reason": S,
        "payment_method_details.card.three_d_secure.transaction_id": S,
        "payment_method_details.card.three_d_secure.version": S,
        "payment_method_details.card.transaction_link_id": S,
        "payment_method_details.card.wallet.dynamic_last4": S,
        "receipt_email": S,
        "receipt_number": S,
        "review": S,
        "source_transfer": S,
        "statement_descriptor": S,
        "statement_descriptor_suffix": S,
        "transfer_group": S,
    },
    "refund": {
        "balance_transaction": S,
        "customer": S,
        "customer_account": S,
        "payment_intent": S,
        "payment_method": S,
        "reason": S,
        "receipt_number": S,
        "source_transfer_reversal": S,
        "transfer_reversal": S,
    },
    "dispute": {
        "payment_intent": S,
        # Every piece of dispute evidence is text or a file id.
        **{f"evidence.{name}": S for name, value in stripe_fixture("dispute")["evidence"].items() if value is None},
    },
    "balance_transaction": {"exchange_rate": float},
    "payout": {
        "application_fee": S,
        "application_fee_amount": INT,
        "failure_balance_transaction": S,
        "failure_code": S,
        "failure_message": S,
        "original_payout": S,
        "payout_method": S,
        "reversed_by": S,
        "statement_descriptor": S,
        "trace_id.value": S,
    },
}
# Fields Stripe documents as nullable although its example has a value.
NULLABLE: dict[str, set[str]] = {
    "charge": {
        "balance_transaction",
        "description",
        "payment_method",
        "receipt_url",
        "shipping",
        "source",
        "transfer_data",
        "billing_details.name",
        "payment_method_details.card.checks.cvc_check",
        "payment_method_details.card.installments",
        "payment_method_details.card.three_d_secure",
        "payment_method_details.card.wallet",
    },
    "refund": set(),
    "dispute": {"payment_method_details.card.network_reason_code"},
    "balance_transaction": {"description"},
    "payout": set(),
}
# Free-form string maps: any keys, string values.
MAPS = {"metadata", "fraud_details", "evidence.enhanced_evidence", "evidence_details.enhanced_eligibility"}


def shape_errors(object_type: str, actual: Any, example: Any, path: str = "") -> list[str]:
    """Where `actual` departs from Stripe's example object: keys, nesting and value types, recursively."""
    where = path or "<object>"
    if path in MAPS:
        ok = isinstance(actual, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in actual.items())
        return [] if ok else [f"{where}: not a map of strings: {actual!r}"]
    if example is None:
        expected = TYPES_WHERE_EXAMPLE_IS_NULL[object_type].get(path)
        if actual is None or (expected is not None and type(actual) is expected):
            return []
        return [f"{where}: {type(actual).__name__} {actual!r} where Stripe sends null or {expected}"]
    if actual is None:
        return [] if path in NULLABLE[object_type] else [f"{where}: null, but Stripe never sends null here"]
    if isinstance(example, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {type(actual).__name__}, expected an object"]
        if actual.keys() != example.keys():
            return [
                f"{where}: keys differ: extra {sorted(actual.keys() - example.keys())}, "
                f"missing {sorted(example.keys() - actual.keys())}"
            ]
        return [
            error
            for key in example
            for error in shape_errors(object_type, actual[key], example[key], f"{path}.{key}" if path else key)
        ]
    if isinstance(example, list):
        if not isinstance(actual, list):
            return [f"{where}: {type(actual).__name__}, expected a list"]
        return (
            [error for item in actual for error in shape_errors(object_type, item, example[0], f"{path}[]")]
            if example
            else []
        )
    if type(actual) is not type(example):
        return [f"{where}: {type(actual).__name__} {actual!r}, expected {type(example).__name__}"]
    return []


def balance_transaction_object(
    balance_transaction_id: str,
    created: int,
    amount: int,
    *,
    source: str | None = None,
    kind: str = "charge",
    fee: int = 0,
    currency: str = "gbp",
) -> dict[str, Any]:
    """A balance transaction shaped as Stripe's example (fixtures/stripe/balance_transaction.json)."""
    return {
        **stripe_fixture("balance_transaction"),
        "id": balance_transaction_id,
        "created": created,
        "available_on": created + 2 * 86_400,
        "amount": amount,
        "fee": fee,
        "net": amount - fee,
        "currency": currency,
        "source": source,
        "type": kind,
        "reporting_category": kind,
    }


def payout_object(
    payout_id: str, created: int, amount: int, *, status: str = "paid", reconciliation: str = "completed"
) -> dict[str, Any]:
    """An automatic payout to a bank account, shaped as Stripe's example (fixtures/stripe/payout.json)."""
    return {
        **stripe_fixture("payout"),
        "id": payout_id,
        "amount": amount,
        "arrival_date": created + 2 * 86_400,
        "balance_transaction": f"txn_{payout_id}",
        "created": created,
        "currency": "gbp",
        "reconciliation_status": reconciliation,
        "status": status,
    }


# --- reading a topic back ---------------------------------------------------------------


def read_topic(kafka: KafkaResource, timeout: float = 30.0) -> list:
    """Every record in the topic (all partitions, from the start)."""
    end = kafka.end_offsets()
    consumer = kafka.consumer(max_poll_records=5000)
    partitions = [TopicPartition(kafka.topic, p) for p in end]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records, deadline = [], time.monotonic() + timeout
    try:
        while any(consumer.position(tp) < end[tp.partition] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(records)} records of {sum(end.values())} from {kafka.topic}")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def headers_of(record) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


# --- a local Stripe -----------------------------------------------------------------------


def stripe_error(status: int, error_type: str, message: str, **extra) -> tuple[int, dict, dict]:
    return status, {}, {"error": {"type": error_type, "message": message, **extra}}


class FakeStripe:
    """A local Stripe API for one account; see the module docstring."""

    def __init__(self, api_key: str = "sk_test_fake_4242"):
        self.api_key = api_key
        self.events: list[dict[str, Any]] = []
        self.objects: dict[str, dict[str, Any]] = {}  # every object as it is now, by id
        self.charges: dict[str, dict[str, Any]] = {}
        self.payout_of: dict[str, str] = {}  # balance transaction id → the payout that paid it out
        self.idempotent: dict[str, tuple[int, dict, dict]] = {}
        # (path or None for any, n-th request to it, 1-based) → response
        self.faults: dict[tuple[str | None, int], tuple[int, dict, dict]] = {}
        self.requests: list[tuple[float, str, str, dict]] = []  # (time, method, path, params)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeStripe:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def account(self, **config) -> StripeResource:
        """The Stripe resource of this account, as STRIPE_API_KEY and TXSTREAM_STRIPE_API_BASE would build it."""
        return StripeResource(api_key=self.api_key, api_base=self.url, **config)

    def add_event(self, event_type: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
        event = {
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": created,
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        with self.lock:
            self.events.append(event)
            self.objects[obj["id"]] = obj
        return event

    def add_object(self, obj: dict[str, Any]) -> None:
        """An object whose events are older than Stripe keeps (or a balance transaction, which has none):
        only its list endpoint shows it."""
        with self.lock:
            self.objects[obj["id"]] = obj

    def pay_out(self, payout_id: str, balance_transaction_ids: list[str]) -> None:
        """The payout paid out these balance transactions: `GET /v1/balance_transactions?payout=…` lists them."""
        with self.lock:
            for balance_transaction_id in balance_transaction_ids:
                self.payout_of[balance_transaction_id] = payout_id

    def fail_request(
        self,
        number: int,
        status: int,
        headers: dict | None = None,
        error_type: str = "api_error",
        message: str = "Something went wrong on Stripe's end.",
        path: str | None = None,
        **extra,
    ) -> None:
        """Answer the `number`-th request (to `path`, if given) with this error."""
        error = {"error": {"type": error_type, "message": message, **extra}}
        self.faults[(path, number)] = (status, headers or {}, error)

    def event_requests(self) -> list[tuple[float, dict]]:
        return self.requests_to("/v1/events")

    def requests_to(self, path: str) -> list[tuple[float, dict]]:
        return [(at, params) for at, method, called, params in self.requests if called == path]

    # --- the API -------------------------------------------------------------------
    def _handle(self, method: str, path: str, params: dict[str, str], headers) -> tuple[int, dict, dict]:
        with self.lock:
            self.requests.append((time.monotonic(), method, path, params))
            number = len(self.requests)
            number_on_path = sum(1 for request in self.requests if request[2] == path)
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return stripe_error(401, "invalid_request_error", "Invalid API Key provided: sk_test_****nope")
        for fault in ((None, number), (path, number_on_path)):
            if fault in self.faults:
                return self.faults[fault]
        key = headers.get("Idempotency-Key")
        if method == "POST" and key in self.idempotent:
            return self.idempotent[key]
        if method == "GET" and path == "/v1/events":
            kept_since = int(time.time()) - EVENT_RETENTION_DAYS * 86_400
            types = {value for name, value in params.items() if name.startswith("types[")}
            with self.lock:
                events = [e for e in self.events if e["created"] >= kept_since and (not types or e["type"] in types)]
            response = self._list(path, events, params)
        elif method == "GET" and "payout" in params and OBJECT_TYPE_OF_PATH.get(path) != PAYOUT_FILTERED:
            response = stripe_error(400, "invalid_request_error", "Received unknown parameter: payout", param="payout")
        elif method == "GET" and path in OBJECT_TYPE_OF_PATH:
            with self.lock:
                objects = [
                    o
                    for o in self.objects.values()
                    if o["object"] == OBJECT_TYPE_OF_PATH[path]
                    and ("payout" not in params or self.payout_of.get(o["id"]) == params["payout"])
                ]
            response = self._list(path, objects, params)
        elif method == "POST" and path == "/v1/charges":
            response = self._create_charge(params)
        elif method == "POST" and path == "/v1/refunds":
            response = self._create_refund(params)
        else:
            response = stripe_error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")
        if method == "POST" and key:
            self.idempotent[key] = response
        return response

    @staticmethod
    def _list(path: str, items: list[dict[str, Any]], params: dict[str, str]) -> tuple[int, dict, dict]:
        limit = int(params.get("limit", 10))
        if not 1 <= limit <= 100:
            return stripe_error(
                400, "invalid_request_error", "Invalid integer: limit must be at most 100", param="limit"
            )
        gte, lt = int(params.get("created[gte]", 0)), int(params.get("created[lt]", 2**62))
        # newest first; among equal `created`, the later-added first
        matching = [item for item in reversed(items) if gte <= item["created"] < lt]
        matching.sort(key=lambda item: -item["created"])
        if "starting_after" in params:
            ids = [item["id"] for item in matching]
            matching = matching[ids.index(params["starting_after"]) + 1 :]
        page = matching[:limit]
        return 200, {}, {"object": "list", "url": path, "has_more": len(matching) > limit, "data": page}

    def _create_charge(self, params: dict[str, str]) -> tuple[int, dict, dict]:
        token = params["source"]
        charge_id = f"ch_{uuid.uuid4().hex[:24]}"
        declined = token.startswith("tok_chargeDeclined")
        charge = {
            "id": charge_id,
            "object": "charge",
            "amount": int(params["amount"]),
            "currency": params["currency"],
            "amount_refunded": 0,
            "refunded": False,
            "created": int(time.time()),
            "disputed": False,
            "status": "failed" if declined else "succeeded",
            "paid": not declined,
            "customer": None,
            "livemode": False,
            "metadata": {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")},
            "payment_method_details": {"card": {"brand": token.removeprefix("tok_")}, "type": "card"},
        }
        self.charges[charge_id] = charge
        self.add_event("charge.failed" if declined else "charge.succeeded", charge, charge["created"])
        if declined:
            return stripe_error(
                402,
                "card_error",
                "Your card was declined.",
                code="card_declined",
                decline_code="generic_decline",
                charge=charge_id,
            )
        return 200, {}, charge

    def _create_refund(self, params: dict[str, str]) -> tuple[int, dict, dict]:
        charge = self.charges[params["charge"]]
        refund = {
            "id": f"re_{uuid.uuid4().hex[:24]}",
            "object": "refund",
            "amount": charge["amount"],
            "charge": charge["id"],
            "currency": charge["currency"],
            "created": int(time.time()),
            "status": "succeeded",
        }
        charge.update(amount_refunded=charge["amount"], refunded=True)
        self.add_event("refund.created", refund, refund["created"])
        self.add_event("charge.refunded", dict(charge), refund["created"])
        return 200, {}, refund

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _respond(self, method: str) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = dict(parse_qsl(url.query if method == "GET" else body))
                status, headers, payload = fake._handle(method, url.path, params, self.headers)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Request-Id", f"req_{uuid.uuid4().hex[:14]}")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._respond("GET")

            def do_POST(self):
                self._respond("POST")

            def log_message(self, *args):  # keep test output quiet
                pass

        return Handler


def start_events_at(postgres: PostgresResource, topic: str, created_gte: int) -> None:
    """Where an earlier pull left the test account's cursors (its Events cursor and its balance-transaction
    cursor): the next pull reads events and lists balance transactions from there, no backfill."""
    cursors = CursorStore(postgres, "stripe-test")
    cursors.save(cursor_stream(topic), {"created_gte": created_gte})
    cursors.save(balance_transactions_stream(topic), {"created_gte": created_gte})


# A payout's event as its status moves on; one whose bank transfer is still under way is updated.
PAYOUT_EVENT_OF_STATUS = {"paid": "payout.paid", "failed": "payout.failed", "canceled": "payout.canceled"}


def events_from_versions(fake: FakeStripe, versions) -> Counter:
    """Stripe events for synthetic object versions, as Stripe would record them; returns their types.

    Balance transactions have no events: each is an object of its list endpoint (as it is now), listed
    under the payout a version of it names."""
    kinds: Counter = Counter()
    seen: set[str] = set()
    for version in versions:
        obj = version.payload
        if version.object_type == "balance_transaction":
            fake.add_object(obj)
            if version.payout_id:
                fake.pay_out(version.payout_id, [obj["id"]])
            continue
        if version.object_type == "payout":
            if obj["id"] not in seen:
                event_type = "payout.created"
            else:
                event_type = PAYOUT_EVENT_OF_STATUS.get(obj["status"], "payout.updated")
        elif version.object_type == "charge":
            if obj["id"] not in seen:
                event_type = "charge.succeeded" if obj["status"] == "succeeded" else "charge.failed"
            else:
                event_type = "charge.refunded" if obj["amount_refunded"] else "charge.updated"
        elif version.object_type == "refund":
            event_type = "refund.created"
        else:
            event_type = "charge.dispute.created" if obj["id"] not in seen else "charge.dispute.closed"
        seen.add(obj["id"])
        fake.add_event(event_type, obj, version.event_time_ms // 1000)
        kinds[event_type] += 1
    return kinds
