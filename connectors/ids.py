"""IDS output: Suricata EVE JSON (one object per line, or a JSON array) into Events.

Strings are cleaned of lone surrogates (JSON escapes such as \\ud800 decode to them) and a record time
before 1990 or more than a day ahead of the clock is replaced by the receipt time and counted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from .errors import SourceError, open_source
from .events import DETECTION, DNS, NETWORK, Event, ReceiptTime, clean_text, excerpt, system_now
from .skips import SkipCounter
from .syslog_messages import QTYPES

log = logging.getLogger(__name__)

MAX_RECORD = 1024 * 1024
MAX_ARRAY_FILE = 256 * 1024 * 1024


def _time(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError("timestamp missing")
    text = value.replace("Z", "+00:00")
    # Suricata writes +0000 without the colon; fromisoformat in 3.11 accepts both forms.
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _int(value: Any) -> int | None:
    # JSON true/false arrive as bool, which is an int subclass; they are not numbers here.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _port(value: Any) -> int | None:
    port = _int(value)
    if port is not None and 0 <= port <= 65535:
        return port
    return None


def _str(value: Any, limit: int = 256) -> str | None:
    return clean_text(value[:limit]) if isinstance(value, str) else None


def eve_event(obj: Any, source: str, ref: str) -> Event | None:
    """Normalize one EVE object; None for event types no detector uses (stats, flow, ...)."""
    if not isinstance(obj, dict):
        raise ValueError("EVE record is not a JSON object")
    etype = obj.get("event_type")
    ts = _time(obj.get("timestamp"))
    src, dst = _str(obj.get("src_ip"), 64), _str(obj.get("dest_ip"), 64)
    sport, dport = _port(obj.get("src_port")), _port(obj.get("dest_port"))
    proto = _str(obj.get("proto"), 16)
    proto = proto.lower() if proto else None
    if etype == "alert":
        alert = obj.get("alert")
        if not isinstance(alert, dict):
            raise ValueError("alert record without an alert object")
        sev = _int(alert.get("severity"))
        signature = _str(alert.get("signature"), 512) or ""
        attrs: dict[str, Any] = {
            "signature": signature,
            "signature_id": _int(alert.get("signature_id")),
            "category": _str(alert.get("category")) or "",
            "severity": sev if sev is not None and 1 <= sev <= 4 else 3,
            "action": _str(alert.get("action"), 32),
            "engine": "suricata",
        }
        return Event(ts, source, DETECTION, src, dst, sport, dport, proto, attrs=attrs,
                     raw=excerpt(signature), ref=ref)
    if etype == "dns":
        dns = obj.get("dns")
        if not isinstance(dns, dict):
            return None
        query: Any = dns
        if "rrname" not in dns and isinstance(dns.get("queries"), list) and dns["queries"]:
            query = dns["queries"][0]  # EVE DNS format version 3 (Suricata 8)
        if not isinstance(query, dict):
            return None
        qname = query.get("rrname")
        if not isinstance(qname, str):
            return None
        qtype_name = query.get("rrtype")
        attrs = {"qname": clean_text(qname.rstrip(".")[:512]), "qtype": QTYPES.get(str(qtype_name), 0),
                 "response": dns.get("type") in ("answer", "response")}
        return Event(ts, source, DNS, src, dst, sport, dport, proto, attrs=attrs, ref=ref)
    if etype == "flow":
        return Event(ts, source, NETWORK, src, dst, sport, dport, proto, ref=ref)
    return None


def bounded_lines(fh: BinaryIO, limit: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a binary file, without their newlines, read a chunk at a time in bounded memory.

    A line longer than `limit` is yielded cut to `limit + 1` bytes (so the consumer sees it is too
    long and counts it) and the rest of it is dropped up to its newline, never held.
    """
    pending = bytearray()
    discarding = False
    while chunk := fh.read(chunk_size):
        start = 0
        if discarding:
            nl = chunk.find(b"\n")
            if nl < 0:
                continue
            discarding, start = False, nl + 1
        cut = chunk.rfind(b"\n")
        if cut >= start:
            lines = chunk[start:cut].split(b"\n")
            if pending:
                lines[0] = bytes(pending) + lines[0]
                pending.clear()
            for line in lines:
                yield line if len(line) <= limit else line[: limit + 1]
            start = cut + 1
        if len(pending) + len(chunk) - start > limit:
            yield bytes(pending) + chunk[start: start + limit + 1 - len(pending)]
            pending.clear()
            discarding = True
        else:
            pending += chunk[start:]
    if pending and not discarding:
        yield bytes(pending)


def read_eve(path: str | Path, source: str | None = None, skips: SkipCounter | None = None,
             now: Callable[[], datetime] = system_now) -> Iterator[Event]:
    """Yield Events from an EVE file, JSON lines or one JSON array; bad records are counted."""
    path = Path(path)
    name = source or f"eve:{path.name}"
    skips = skips or SkipCounter(log, name)
    receipt = ReceiptTime(now)
    fh = open_source(path)
    with fh:
        head = fh.read(4096).lstrip()
        fh.seek(0)
        if head.startswith(b"["):
            if path.stat().st_size > MAX_ARRAY_FILE:
                raise SourceError(f"{path}: JSON array larger than {MAX_ARRAY_FILE} bytes; use JSON lines")
            try:
                records = json.loads(fh.read().decode("utf-8", "replace"))
            except json.JSONDecodeError as exc:
                raise SourceError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from exc
            except (ValueError, RecursionError) as exc:  # integers over 4300 digits, deep nesting
                raise SourceError(f"{path}: not usable JSON: {str(exc)[:120]}") from exc
            if not isinstance(records, list):
                raise SourceError(f"{path}: expected a JSON array of EVE records")
            for i, obj in enumerate(records, 1):
                ev = _safe(obj, name, f"{name}[{i}]", skips, receipt)
                if ev is not None:
                    yield ev
            return
        yield from EveLines(name, skips, now).events(bounded_lines(fh, MAX_RECORD))


class EveLines:
    """Turns EVE JSON lines into Events, for files read whole and files followed as they grow."""

    def __init__(self, source: str, skips: SkipCounter | None = None,
                 now: Callable[[], datetime] = system_now) -> None:
        self.source = source
        self.skips = skips or SkipCounter(log, source)
        self.receipt = ReceiptTime(now)

    def events(self, lines: Iterable[bytes], first_line: int = 1) -> Iterator[Event]:
        """Yield Events for raw lines; blank lines are passed over, bad records counted, not raised."""
        name, skips, receipt = self.source, self.skips, self.receipt
        for n, raw in enumerate(lines, first_line):
            if not raw.strip():
                continue
            if len(raw) > MAX_RECORD:
                skips.skip("overlong EVE record", f"line {n}")
                continue
            try:
                obj = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                # JSONDecodeError and UnicodeDecodeError are ValueErrors, and so is an integer
                # over 4300 digits; a few thousand nested brackets raise RecursionError.
                skips.skip("invalid JSON", f"line {n}: {str(exc)[:120]}")
                continue
            ev = _safe(obj, name, f"{name}:{n}", skips, receipt)
            if ev is not None:
                yield ev


def _safe(obj: Any, source: str, ref: str, skips: SkipCounter, receipt: ReceiptTime) -> Event | None:
    try:
        ev = eve_event(obj, source, ref)
    except (ValueError, TypeError, OverflowError) as exc:
        skips.skip("bad EVE record", f"{ref}: {exc}")
        return None
    if ev is None:
        skips.ignore("unused EVE record")
    elif not receipt.plausible(ev.time):
        skips.repair("timestamp out of range, set to receipt time", f"{ref}: {ev.time!r}")
        ev.time = receipt.now()
    return ev
