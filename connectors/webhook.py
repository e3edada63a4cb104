"""A JSON POST to a configured webhook: the `notify.webhook` action and the runner's alerts."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import DeviceRefused, DeviceTimeout, DeviceUnreachable

MAX_ANSWER = 4096


@dataclass(frozen=True)
class WebhookTarget:
    """Where a webhook posts: its configured name, URL and optional bearer token (never shown)."""

    name: str
    url: str
    token: str | None = field(default=None, repr=False)
    timeout_s: float = 10.0

    @property
    def shown_url(self) -> str:
        """The URL without credentials or query string, for messages and logs."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


def _post(target: WebhookTarget, payload: Mapping[str, Any], timeout_s: float) -> int:
    body = json.dumps(payload, sort_keys=True).encode("utf-8")
    req = urllib.request.Request(target.url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "watchstander"})
    if target.token:
        req.add_header("Authorization", f"Bearer {target.token}")
    device = f"webhook {target.name}"
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read(MAX_ANSWER)
            status = int(getattr(resp, "status", 200))
    except urllib.error.HTTPError as exc:
        raise DeviceRefused(device, f"{target.shown_url} answered HTTP {exc.code}") from exc
    except TimeoutError as exc:
        raise DeviceTimeout(device, f"{target.shown_url} did not answer within {timeout_s:g} s") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise DeviceTimeout(device, f"{target.shown_url} did not answer within {timeout_s:g} s") from exc
        raise DeviceUnreachable(device, f"cannot reach {target.shown_url}: {reason}") from exc
    if not 200 <= status < 300:
        raise DeviceRefused(device, f"{target.shown_url} answered HTTP {status}")
    return status


async def post_json(target: WebhookTarget, payload: Mapping[str, Any], *, timeout_s: float | None = None) -> int:
    """POST `payload` as JSON; returns the HTTP status, raises DeviceError subclasses naming the webhook."""
    wait = min(timeout_s or target.timeout_s, target.timeout_s) if timeout_s else target.timeout_s
    return await asyncio.to_thread(_post, target, payload, wait)
