"""The alert webhook: where a failed run is announced, as one JSON POST."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import requests

WEBHOOK_URL_SETTING = "TXSTREAM_ALERT_WEBHOOK_URL"


class AlertWebhookError(RuntimeError):
    pass


def describe_endpoint(url: str) -> str:
    """scheme://host[:port] of `url`: webhook URLs carry their token in the path or query, never printed."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class AlertWebhookResource(dg.ConfigurableResource):
    """An HTTP endpoint that takes a JSON POST per alert (a Slack or Mattermost incoming webhook reads
    its `text`; anything else gets the fields too). No `url` → nothing is sent."""

    url: str | None = None
    timeout_seconds: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def post(self, message: dict[str, Any]) -> None:
        """POST `message` as JSON; an AlertWebhookError says what went wrong and what to do."""
        if not self.url:
            return
        endpoint = describe_endpoint(self.url)
        try:
            response = requests.post(self.url, json=message, timeout=self.timeout_seconds)
        except requests.Timeout:
            raise AlertWebhookError(
                f"The alert webhook at {endpoint} did not answer within {self.timeout_seconds:g} s: "
                f"check that it is up and reachable from the Dagster code server, or fix {WEBHOOK_URL_SETTING}."
            ) from None
        except requests.RequestException as exc:
            reason = _without_token(str(exc), self.url)
            raise AlertWebhookError(
                f"Cannot reach the alert webhook at {endpoint} ({reason}): check the host in "
                f"{WEBHOOK_URL_SETTING} and that the Dagster code server can reach it."
            ) from None
        if not response.ok:
            raise AlertWebhookError(
                f"The alert webhook at {endpoint} refused the alert: HTTP {response.status_code} "
                f"{response.reason}. {_hint(response.status_code)}"
            )


def _without_token(text: str, url: str) -> str:
    """`text` (a requests error, which quotes the path it asked for) without `url`'s path and query."""
    parts = urlsplit(url)
    for secret in (f"{parts.path}?{parts.query}", parts.path, parts.query):
        if len(secret) > 1:
            text = text.replace(secret, "/***")
    return text


def _hint(status: int) -> str:
    if status in (401, 403, 404, 410):
        return f"The URL's token may be wrong or revoked: put a current webhook URL in {WEBHOOK_URL_SETTING}."
    if status >= 500:
        return "The receiving service failed: check its status; nothing is resent."
    return f"Check that {WEBHOOK_URL_SETTING} is an endpoint that takes a JSON POST."
