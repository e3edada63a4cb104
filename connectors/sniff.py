"""Content sniffing: which reader a file needs, decided from its bytes, never its name."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .dnsnames import looks_like_name
from .errors import SourceError, UnknownFormatError
from .netflow_pcap import NETFLOW, is_flow_capture
from .packets import is_pcap
from .zeek import ZEEK, looks_like_zeek

PCAP, SYSLOG, EVE, DNS_NAMES = "pcap", "syslog", "eve", "dnsnames"

_SYSLOG_START = re.compile(
    rb"^(?:<\d{1,3}>)?(?:1 )?(?:[A-Z][a-z]{2} {1,2}\d{1,2} \d\d:\d\d:\d\d|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)"
)


def sniff(path: str | Path) -> str:
    """Return the format of `path` (pcap, syslog, eve or dnsnames); raise UnknownFormatError otherwise."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror}") from exc
    if not head:
        raise UnknownFormatError(f"{path} is empty")
    if is_pcap(head) and is_flow_capture(head):  # a capture of NetFlow/IPFIX export datagrams
        return NETFLOW
    if is_pcap(head):
        return PCAP
    if looks_like_zeek(head):  # before EVE: a Zeek JSON record may carry "timestamp" in a value
        return ZEEK
    text = head.lstrip()
    lines = [ln for ln in head.splitlines()[:20] if ln.strip()]
    if text.startswith(b"[") or text.startswith(b"{"):
        first = lines[0].strip() if lines else b""
        if text.startswith(b"{"):
            try:
                obj = json.loads(first)
                if isinstance(obj, dict) and ("event_type" in obj or "timestamp" in obj):
                    return EVE
            except (ValueError, RecursionError):
                # Not JSON after all: bad UTF-8, an integer over 4300 digits, or deep nesting.
                pass
        if b'"event_type"' in head or b'"timestamp"' in head:
            return EVE
    sample = lines[:-1] if len(lines) > 1 and not head.endswith(b"\n") and len(head) == 65536 else lines
    if sample and sum(1 for ln in sample if _SYSLOG_START.match(ln)) >= max(1, len(sample) // 2):
        return SYSLOG
    decoded = [ln for ln in (b.decode("utf-8", "backslashreplace").strip() for b in sample) if not ln.startswith("#")]
    names = [ln.rsplit(",", 1)[-1].strip().strip('"') for ln in decoded]
    if names and "," in decoded[0] and not looks_like_name(names[0]):
        names = names[1:]  # a CSV header row, as read_dns_names treats it
    if names and sum(1 for n in names if looks_like_name(n)) >= max(1, int(len(names) * 0.8)):
        return DNS_NAMES
    raise UnknownFormatError(f"{path}: not a pcap/pcapng, syslog, Suricata EVE or DNS name list")
