"""The normalized telemetry record every source yields and every detector consumes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# Kinds follow OCSF class names where one fits.
NETWORK = "network_activity"
DNS = "dns_activity"
ARP = "arp_activity"
AUTH = "authentication"
DETECTION = "detection_finding"
LOG = "log"

KINDS = (NETWORK, DNS, ARP, AUTH, DETECTION, LOG)

# TCP flag bits as they appear in the header byte.
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

RAW_EXCERPT_MAX = 512

# The times telemetry may carry: a record from before 1990 or more than a day ahead of receipt is a
# broken clock or a forgery, and a time outside what a datetime can hold breaks every reader downstream.
EARLIEST_TIME = 631_152_000.0  # 1990-01-01T00:00:00Z
FUTURE_SLACK_S = 86_400.0

_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass(slots=True)
class Event:
    """One normalized telemetry record; cheap to create because it is made millions of times."""

    time: float
    source: str
    kind: str
    src: str | None = None
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None
    proto: str | None = None
    flags: int = 0
    host: str | None = None
    user: str | None = None
    outcome: str | None = None
    attrs: dict[str, Any] | None = None
    raw: str | None = None
    ref: str | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with empty fields left out."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is not None and not (name == "flags" and value == 0):
                out[name] = value
        return out


def excerpt(text: str | bytes, limit: int = RAW_EXCERPT_MAX) -> str:
    """Bound raw evidence to `limit` characters, decoding bytes without ever failing."""
    if isinstance(text, bytes):
        text = text[: limit * 4].decode("utf-8", "backslashreplace")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def system_now() -> datetime:
    """The system clock, for callers that inject none."""
    return datetime.now(timezone.utc)


def latest_time(now: float) -> float:
    """The latest record time accepted when `now` is the receipt time."""
    return now + FUTURE_SLACK_S


class ReceiptTime:
    """Checks record times against the receipt clock, reading it only when a time looks out of range."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._latest = latest_time(now().timestamp())

    def plausible(self, ts: float) -> bool:
        """True for a plausible record time (never for NaN); a long-lived source re-reads the clock before saying no."""
        if EARLIEST_TIME <= ts <= self._latest:
            return True
        self._latest = latest_time(self._now().timestamp())
        return EARLIEST_TIME <= ts <= self._latest

    def now(self) -> float:
        """The receipt time, to put in place of an implausible record time."""
        return self._now().timestamp()


def clean_text(text: str) -> str:
    """Replace lone surrogates (from JSON escapes like \\ud800) with U+FFFD so the text encodes as UTF-8."""
    if text.isascii() or _SURROGATES.search(text) is None:
        return text
    return _SURROGATES.sub("\ufffd", text)
