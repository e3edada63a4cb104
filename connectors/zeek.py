"""Zeek logs (conn, dns, ssh, notice, weird) in Zeek's TSV form or its JSON-lines form, into Events.

Which log a record belongs to comes from the TSV `#path` header, or in JSON from `_path` when the
writer adds it, else from the record's own keys (`conn_state` is conn, `note` is notice, ...).
Other logs (http, files, ftp, ...) are counted as ignored. Mapping, per log:

- conn: one flow, `network_activity`, at the connection's start (`ts`); TCP flags are the union of
  what `history` says both sides sent (S, H: SYN; H, A, D: ACK; F: FIN; R: RST), or from
  `conn_state` when there is no history (S0: SYN; REJ: SYN+RST; SF: SYN+ACK+FIN; see docs/zeek.md).
- dns: one query, `dns_activity`, with the answer's rcode and names as attributes.
- ssh: `authentication`; `auth_success` F is one failure per attempt (at most MAX_ATTEMPTS), T is
  one success, unset (SSH-1, or Zeek could not tell) is no authentication event.
- notice: `detection_finding`, as a Suricata alert is, with engine "zeek".
- weird: `log`; never a finding on its own (a weird is a protocol oddity, rarely an attack).

A record time before 1990 or more than a day ahead of the clock is replaced by the receipt time
and counted; a line over MAX_RECORD bytes, bad JSON, a row that does not fit its header and a
record without a usable time are counted as skipped.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import open_source
from .events import (
    ACK,
    AUTH,
    DETECTION,
    DNS,
    FIN,
    LOG,
    NETWORK,
    RST,
    SYN,
    Event,
    ReceiptTime,
    clean_text,
    excerpt,
    system_now,
)
from .ids import bounded_lines
from .skips import SkipCounter
from .syslog_messages import QTYPES
from .zeek_tsv import Header, HeaderError, read_header_line, read_row

log = logging.getLogger(__name__)

ZEEK = "zeek"
MAX_RECORD = 256 * 1024
MAX_ATTEMPTS = 64  # failure events one ssh.log record may stand for: bounds what one line can make
MAX_ANSWERS = 16

# History letters: upper case from the originator, lower case from the responder.
_HISTORY_FLAGS = {"s": SYN, "h": SYN | ACK, "a": ACK, "d": ACK, "f": FIN, "r": RST}
_STATE_FLAGS = {
    "S0": SYN, "S1": SYN | ACK, "SF": SYN | ACK | FIN, "REJ": SYN | RST, "S2": SYN | ACK | FIN,
    "S3": SYN | ACK | FIN, "RSTO": SYN | ACK | RST, "RSTR": SYN | ACK | RST, "RSTOS0": SYN | RST,
    "RSTRH": SYN | ACK | RST, "SH": SYN | FIN, "SHR": SYN | ACK | FIN, "OTH": 0,
}
# Notices that name an attack are medium (2); sensor-health notices are info (4); the rest low (3).
_HOSTILE_NOTES = frozenset({
    "SSH::Password_Guessing", "SSH::Login_By_Password_Guesser", "FTP::Bruteforcing",
    "HTTP::SQL_Injection_Attacker", "HTTP::SQL_Injection_Victim", "Intel::Notice",
})
_HOSTILE_MODULES = ("Scan::", "Heartbleed::")
_HEALTH_MODULES = ("CaptureLoss::", "PacketFilter::", "Notice::", "Weird::", "Software::", "Conn::")


@lru_cache(maxsize=4096)
def flags_for(history: str | None, conn_state: str | None) -> int:
    """TCP flags for a connection: from its history when Zeek wrote one, else from its state."""
    if history:
        flags = 0
        for ch in history[:64]:
            flags |= _HISTORY_FLAGS.get(ch.lower(), 0)
        return flags
    return _STATE_FLAGS.get(conn_state or "", 0)


def _time(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ts = float(value)
    elif isinstance(value, str) and value[:1].isdigit():
        if "T" in value[:11] and "-" in value[:5]:  # JSON logs written with json_timestamps=ISO8601
            dt = datetime.fromisoformat(value)
            ts = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
        else:
            ts = float(value)
    else:
        raise ValueError("no usable ts")
    if not math.isfinite(ts):
        raise ValueError("ts is not a finite number")
    return ts


def _int(value: Any, high: int = 2**63 - 1) -> int | None:
    # TSV gives digit strings, JSON gives ints; `type() is` keeps JSON's true/false (bools) out.
    if type(value) is str:
        if len(value) > 20 or not value.isdigit() or not value.isascii():
            return None
        value = int(value)
    elif type(value) is not int or value < 0:
        return None
    return value if value <= high else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        out = float(value) if isinstance(value, (int, float, str)) and len(str(value)) <= 32 else None
    except ValueError:
        return None
    return out if out is not None and math.isfinite(out) and out >= 0 else None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    return {"T": True, "F": False}.get(value) if isinstance(value, str) else None


def _str(value: Any, limit: int = 256) -> str | None:
    if isinstance(value, str):
        return clean_text(value[:limit]) if value else None
    return None


def _get(rec: dict[str, Any], dotted: str) -> Any:
    """A field by Zeek's flat dotted name, or nested as some JSON shippers write it (`id: {orig_h}`)."""
    if dotted in rec:
        return rec[dotted]
    head, _, tail = dotted.partition(".")
    inner = rec.get(head)
    return inner.get(tail) if tail and isinstance(inner, dict) else None


def _endpoints(rec: dict[str, Any]) -> tuple[str | None, str | None, int | None, int | None]:
    return (_str(_get(rec, "id.orig_h"), 64), _str(_get(rec, "id.resp_h"), 64),
            _int(_get(rec, "id.orig_p"), 65535), _int(_get(rec, "id.resp_p"), 65535))


def guess_path(rec: dict[str, Any]) -> str | None:
    """Which log a JSON record comes from, by `_path` or by the keys only that log has."""
    path = rec.get("_path")
    if isinstance(path, str):
        return path[:64]
    if "conn_state" in rec or "history" in rec or "orig_ip_bytes" in rec:
        return "conn"
    if "note" in rec:
        return "notice"
    if "auth_success" in rec or "auth_attempts" in rec:
        return "ssh"
    if "query" in rec and ("qtype" in rec or "rcode" in rec or "trans_id" in rec):
        return "dns"
    if "name" in rec and ("addl" in rec or "peer" in rec or "notice" in rec):
        return "weird"
    return None


def _conn(rec: dict[str, Any], ts: float, ref: str) -> list[Event]:
    src, dst, sport, dport = _endpoints(rec)
    proto = (_str(rec.get("proto"), 16) or "").lower() or None
    if proto == "icmp" and dst is not None and ":" in dst:
        proto = "icmp6"  # Zeek says icmp for both; the packet path says icmp6 for ICMPv6
    state = _str(rec.get("conn_state"), 16)
    orig_bytes, resp_bytes = _int(rec.get("orig_bytes")) or 0, _int(rec.get("resp_bytes")) or 0
    attrs = {
        "flow": True,
        "packets": (_int(rec.get("orig_pkts")) or 0) + (_int(rec.get("resp_pkts")) or 0),
        "bytes": (_int(rec.get("orig_ip_bytes")) or 0) + (_int(rec.get("resp_ip_bytes")) or 0),
        "duration": _float(rec.get("duration")) or 0.0,
        "orig_bytes": orig_bytes,
        "resp_bytes": resp_bytes,
        "conn_state": state or "",
        "uid": _str(rec.get("uid"), 64) or "",
    }
    history = _str(rec.get("history"), 64)
    if history:
        attrs["history"] = history
    flags = flags_for(history, state) if proto == "tcp" else 0
    return [Event(ts, "zeek:conn", NETWORK, src, dst, sport, dport, proto, flags, attrs=attrs, ref=ref)]


def _dns(rec: dict[str, Any], ts: float, ref: str) -> list[Event]:
    query = _str(rec.get("query"), 1024)
    if not query:
        return []
    src, dst, sport, dport = _endpoints(rec)
    qtype = _int(rec.get("qtype"), 65535)
    if qtype is None:
        qtype = QTYPES.get(str(rec.get("qtype_name")), 0)
    attrs: dict[str, Any] = {"qname": query.rstrip("."), "qtype": qtype, "response": False}
    rcode = _int(rec.get("rcode"), 65535)
    if rcode is not None:
        attrs["rcode"] = rcode
    answers = rec.get("answers")
    if isinstance(answers, list) and answers:
        attrs["answers"] = [a[:256] for a in answers[:MAX_ANSWERS] if isinstance(a, str)]
    proto = (_str(rec.get("proto"), 16) or "udp").lower()
    return [Event(ts, "zeek:dns", DNS, src, dst, sport, dport, proto, attrs=attrs, ref=ref)]


def _ssh(rec: dict[str, Any], ts: float, ref: str) -> list[Event]:
    success = _bool(rec.get("auth_success"))
    if success is None:
        return []
    src, dst, sport, dport = _endpoints(rec)
    attempts = _int(rec.get("auth_attempts")) or 0
    attrs = {"layer": "zeek", "service": "ssh", "auth_attempts": attempts, "uid": _str(rec.get("uid"), 64) or "",
             "client": _str(rec.get("client")) or "", "server": _str(rec.get("server")) or ""}
    raw = excerpt(f"ssh auth_success={'T' if success else 'F'} auth_attempts={attempts} client={attrs['client']}")
    if success:
        return [Event(ts, "zeek:ssh", AUTH, src, dst, sport, dport, "ssh", outcome="success", attrs=attrs,
                      raw=raw, ref=ref)]
    return [Event(ts, "zeek:ssh", AUTH, src, dst, sport, dport, "ssh", outcome="failure", attrs=dict(attrs),
                  raw=raw, ref=ref) for _ in range(min(max(attempts, 1), MAX_ATTEMPTS))]


def notice_severity(note: str) -> int:
    """Suricata-style severity (1 highest) for a Zeek notice type."""
    if note in _HOSTILE_NOTES or note.startswith(_HOSTILE_MODULES):
        return 2
    if note.startswith(_HEALTH_MODULES):
        return 4
    return 3


def sampled_server(sub: str) -> str | None:
    """The one server a notice's `Sampled servers: a, b` names (Zeek's guessing notices), or None."""
    if not sub.startswith("Sampled servers:"):
        return None
    servers = {s.strip() for s in sub[len("Sampled servers:"):].split(",")}
    if len(servers) != 1:
        return None
    try:
        return str(ipaddress.ip_address(servers.pop()))
    except ValueError:
        return None


def _notice(rec: dict[str, Any], ts: float, ref: str) -> list[Event]:
    note = _str(rec.get("note"), 128)
    if not note:
        raise ValueError("notice without a note")
    orig, resp, sport, dport = _endpoints(rec)
    src = _str(rec.get("src"), 64) or orig
    dst = _str(rec.get("dst"), 64) or resp
    port = _int(rec.get("p"), 65535)
    proto = _str(rec.get("proto"), 16)
    msg = _str(rec.get("msg"), 1024) or ""
    sub = _str(rec.get("sub"), 1024) or ""
    if dst is None:
        dst = sampled_server(sub)
    attrs: dict[str, Any] = {
        "signature": note,
        "signature_id": None,
        "category": "Zeek notice",
        "severity": notice_severity(note),
        "action": None,
        "engine": "zeek",
        "msg": msg,
        "sub": sub,
        "uid": _str(rec.get("uid"), 64) or "",
    }
    n = _int(rec.get("n"))
    if n is not None:
        attrs["n"] = n
    return [Event(ts, "zeek:notice", DETECTION, src, dst, sport, port if port is not None else dport,
                  proto.lower() if proto else None, attrs=attrs, raw=excerpt(f"{note}: {msg}"), ref=ref)]


def _weird(rec: dict[str, Any], ts: float, ref: str) -> list[Event]:
    name = _str(rec.get("name"), 128)
    if not name:
        raise ValueError("weird without a name")
    src, dst, sport, dport = _endpoints(rec)
    addl = _str(rec.get("addl"), 512) or ""
    attrs = {"weird": name, "addl": addl, "notice": _bool(rec.get("notice")) or False,
             "peer": _str(rec.get("peer"), 64) or "", "uid": _str(rec.get("uid"), 64) or ""}
    return [Event(ts, "zeek:weird", LOG, src, dst, sport, dport, attrs=attrs,
                  raw=excerpt(f"weird {name} {addl}".rstrip()), ref=ref)]


_MAPPERS: dict[str, Callable[[dict[str, Any], float, str], list[Event]]] = {
    "conn": _conn, "dns": _dns, "ssh": _ssh, "notice": _notice, "weird": _weird,
}


def zeek_events(rec: dict[str, Any], path: str | None, ref: str) -> list[Event]:
    """The Events of one record of log `path`; [] for a log no detector uses. Raises ValueError when unusable."""
    mapper = _MAPPERS.get(path or "")
    if mapper is None:
        return []
    return mapper(rec, _time(rec.get("ts")), ref)


def looks_like_zeek(head: bytes) -> bool:
    """True when a file's first bytes are a Zeek log: TSV with `#separator` and `#fields`/`#path`, or Zeek JSON.

    A JSON record is Zeek's when it has `ts` and a connection (`uid`, `id.orig_h`, `id`), a `_path`, a
    `note`, or a `name` with a `peer` (a weird about no connection); Suricata's `event_type` rules it out.
    """
    lines = [ln for ln in head.splitlines()[:40] if ln.strip()]
    if any(ln.startswith(b"#separator ") for ln in lines[:12]):
        return any(ln.startswith((b"#fields", b"#path")) for ln in lines)
    first = lines[0].strip() if lines else b""
    if not first.startswith(b"{"):
        return False
    try:
        obj = json.loads(first)
    except (ValueError, RecursionError):
        return False
    return (isinstance(obj, dict) and "ts" in obj and "event_type" not in obj
            and (any(k in obj for k in ("uid", "id.orig_h", "id", "_path", "note")) or {"name", "peer"} <= obj.keys()))


class ZeekLines:
    """Turns Zeek log lines, TSV (headers first) or JSON, into Events, for whole files and followed ones."""

    def __init__(self, source: str, skips: SkipCounter | None = None,
                 now: Callable[[], datetime] = system_now) -> None:
        self.source = source
        self.skips = skips or SkipCounter(log, source)
        self.receipt = ReceiptTime(now)
        self.header: Header | None = None

    def events(self, lines: Iterable[bytes], first_line: int = 1) -> Iterator[Event]:
        """Yield Events for raw lines; header lines set the columns, bad records are counted, not raised."""
        skips = self.skips
        for n, raw in enumerate(lines, first_line):
            if len(raw) > MAX_RECORD:
                skips.skip("overlong Zeek record", f"line {n}")
                continue
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line.strip():
                continue
            ref = f"{self.source}:{n}"
            if line.startswith(b"#"):
                self._header_line(line, ref)
                continue
            try:
                if line.lstrip().startswith(b"{"):
                    rec = json.loads(line)
                    if not isinstance(rec, dict):
                        raise ValueError("JSON record is not an object")
                    path = guess_path(rec)
                else:
                    if self.header is None or not self.header.ready():
                        skips.skip("Zeek TSV row before its #fields header", ref)
                        continue
                    rec, path = read_row(self.header, line), self.header.path
                evs = zeek_events(rec, path, ref)
            except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                # JSONDecodeError and UnicodeDecodeError are ValueErrors; deep nesting raises RecursionError.
                skips.skip("bad Zeek record", f"{ref}: {str(exc)[:120]}")
                continue
            if not evs:
                skips.ignore("unused Zeek record")
                continue
            for ev in evs:
                if not self.receipt.plausible(ev.time):
                    skips.repair("timestamp out of range, set to receipt time", f"{ref}: {ev.time!r}")
                    ev.time = self.receipt.now()
                yield ev

    def prime(self, head: bytes) -> None:
        """Read the header lines at the top of a file (its first bytes) when following it from further on."""
        for n, line in enumerate(head.split(b"\n")[:64], 1):
            if not line.startswith(b"#"):
                break
            self._header_line(line.rstrip(b"\r"), f"{self.source}:{n}")

    def _header_line(self, line: bytes, ref: str) -> None:
        try:
            self.header = read_header_line(self.header or Header(), line)
        except HeaderError as exc:
            self.header = None  # rows after a header we cannot trust would be read into the wrong columns
            self.skips.skip("bad Zeek header", f"{ref}: {exc}")


def read_zeek(path: str | Path, source: str | None = None, skips: SkipCounter | None = None,
              now: Callable[[], datetime] = system_now) -> Iterator[Event]:
    """Yield Events from a Zeek log file, TSV or JSON lines; bad records are counted."""
    path = Path(path)
    name = source or f"zeek:{path.name}"
    skips = skips or SkipCounter(log, name)
    fh = open_source(path)
    with fh:
        yield from ZeekLines(name, skips, now).events(bounded_lines(fh, MAX_RECORD))
