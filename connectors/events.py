"""The normalized telemetry record every source yields and every detector consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
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
