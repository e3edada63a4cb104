"""NetFlow v5, v9 and IPFIX (RFC 7011) export datagrams decoded into flow Events.

One `FlowDecoder` holds the template state of every exporter it has heard: templates are kept per
exporter address, protocol version and source id (v9) or observation domain (IPFIX), expire when
not refreshed within `template_ttl_s`, and are bounded in number. Each template is compiled once
into a `struct.Struct` that unpacks only the fields a detector needs (the rest is padding), so a
data record costs one unpack.

Every flow record becomes one `network_activity` Event:
time = flow end time (export time when the template has no time field), source "netflow:<exporter>",
src/dst/sport/dport, proto ("tcp", "udp", "icmp", "icmp6", "sctp", else the number), flags = the
OR of the TCP flags seen, attrs {"flow": True, "packets", "bytes", "duration", "exporter"}; an
ICMP flow carries type*256+code in dport and 0 in sport, as NetFlow does.

Hostile input never raises: a malformed set is counted in the SkipCounter and decoding goes on with
the next set of the same datagram. Data sets whose template is not known yet are held back
(bounded: `pending_sets` sets and `pending_bytes` bytes overall) and decoded when the template
arrives; what is evicted, expires or is still waiting at `flush_pending()` is counted "no template".
"""

from __future__ import annotations

import logging
import socket
import struct
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from .events import EARLIEST_TIME, NETWORK, Event, ReceiptTime, system_now
from .skips import SkipCounter

log = logging.getLogger(__name__)

V5, V9, IPFIX = 5, 9, 10
VERSIONS = (V5, V9, IPFIX)

V5_HEADER = struct.Struct("!HHIIIIBBH")  # version, count, uptime, secs, nsecs, flow sequence, engine type/id, sampling
# src, dst, (next hop, ifaces), packets, octets, first, last, sport, dport, (pad), flags, proto, (tos .. pad)
V5_RECORD = struct.Struct("!4s4s8xIIIIHHxBB9x")
V5_MAX_COUNT = 30
V9_HEADER = struct.Struct("!HHIIII")  # version, count, uptime, secs, sequence, source id
IPFIX_HEADER = struct.Struct("!HHIII")  # version, length, export time, sequence, observation domain
SET_HEADER = struct.Struct("!HH")
U16 = struct.Struct("!H")
U32 = struct.Struct("!I")

V9_TEMPLATE_SET, V9_OPTIONS_SET = 0, 1
IPFIX_TEMPLATE_SET, IPFIX_OPTIONS_SET = 2, 3
MIN_DATA_SET = 256
VARIABLE = 0xFFFF
ENTERPRISE_BIT = 0x8000

MAX_FIELDS = 512  # fields in one template: real ones have tens; more is an attack on memory
MAX_LAYOUTS = 64  # compiled layouts kept per variable-length template
AFTER_EXPORT_S = 600.0  # a record may end this long after its datagram's export time (exporter clock skew)
ADDR_CACHE = 1 << 17  # address strings kept for reuse (about 25 MiB at most), then started afresh
MASK32, HALF32 = 0xFFFFFFFF, 0x80000000
NTP_EPOCH = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp"}
_PROTO = tuple(PROTO_NAMES.get(n, str(n)) for n in range(256))
_ICMP = frozenset({1, 58})

# Roles: the values a flow Event needs, in the order a compiled template hands them over.
(R_SRC, R_DST, R_SPORT, R_DPORT, R_PROTO, R_FLAGS, R_BYTES, R_PACKETS, R_START, R_END,
 R_ICMP, R_ICMP_TYPE, R_ICMP_CODE, R_SYSINIT) = range(14)
ROLES = 14
_DEFAULTS: tuple[Any, ...] = (None, None, None, None, 0, 0, 0, 0, None, None, None, None, None, None)

# Time modes: how the start and end fields are read (T_SYSINIT: IPFIX uptimes plus systemInitTimeMilliseconds).
T_EXPORT, T_UPTIME, T_MS, T_S, T_NTP, T_DELTA_US, T_SYSINIT = range(7)

ADDR4, ADDR6, INT, NTP = "a4", "a16", "int", "ntp"
# IE id -> (role, kind, preference: lower wins when a template carries several for one role)
_SIMPLE: dict[int, tuple[int, str, int]] = {
    8: (R_SRC, ADDR4, 0), 27: (R_SRC, ADDR6, 1), 12: (R_DST, ADDR4, 0), 28: (R_DST, ADDR6, 1),
    7: (R_SPORT, INT, 0), 11: (R_DPORT, INT, 0), 4: (R_PROTO, INT, 0), 6: (R_FLAGS, INT, 0),
    1: (R_BYTES, INT, 0), 85: (R_BYTES, INT, 1), 23: (R_BYTES, INT, 2),
    2: (R_PACKETS, INT, 0), 86: (R_PACKETS, INT, 1), 24: (R_PACKETS, INT, 2),
    32: (R_ICMP, INT, 0), 139: (R_ICMP, INT, 1), 176: (R_ICMP_TYPE, INT, 0), 178: (R_ICMP_TYPE, INT, 1),
    177: (R_ICMP_CODE, INT, 0), 179: (R_ICMP_CODE, INT, 1), 160: (R_SYSINIT, INT, 0),
}
# (start IE, end IE, mode, kind), preferred first
_TIMES: tuple[tuple[int, int, int, str], ...] = (
    (152, 153, T_MS, INT), (150, 151, T_S, INT), (154, 155, T_NTP, NTP), (156, 157, T_NTP, NTP),
    (22, 21, T_UPTIME, INT), (158, 159, T_DELTA_US, INT),
)
_INT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}
# The widest each narrow field may be (RFC 7012's types): a 3-byte port would read as 65536 and more.
_ROLE_MAX_LENGTH = {R_SPORT: 2, R_DPORT: 2, R_PROTO: 1, R_FLAGS: 2, R_ICMP: 2, R_ICMP_TYPE: 1, R_ICMP_CODE: 1}


class FlowError(ValueError):
    """A set or record that cannot be decoded; counted by its reason, never raised out of `decode`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Template:
    """One compiled (options) template: how to unpack its records into the roles."""

    tid: int
    fields: tuple[tuple[int, int], ...]  # (IE id, or -1 for an enterprise field; length)
    options: bool
    refreshed: float
    length: int  # record length with every variable-length field empty (its length prefix only)
    variable: bool
    plan: tuple[str, ...]  # per field: the struct code for a role, or "" for padding
    getter: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    pad: tuple[Any, ...]
    odd: tuple[int, ...]  # roles unpacked as bytes (3, 5, 6 or 7 byte integers)
    time_mode: int
    ntp: bool
    fixed: struct.Struct | None
    layouts: dict[tuple[int, ...], struct.Struct] = field(default_factory=dict)
    builders: dict[int, Callable[..., None]] = field(default_factory=dict)
    values: tuple[int, ...] = ()  # per role, its index in an unpacked record, or -1 when absent


def compile_template(tid: int, fields: tuple[tuple[int, int], ...], options: bool, refreshed: float) -> Template:
    """Compile a template's field list (IE id or -1 for an enterprise field, length) into its unpacker."""
    chosen: dict[int, tuple[int, int]] = {}  # role -> (preference, field index)
    kinds: dict[int, str] = {}
    for i, (ie, length) in enumerate(fields):
        spec = _SIMPLE.get(ie)
        if spec is None or length == VARIABLE:
            continue
        role, kind, pref = spec
        if not _fits(kind, length) or length > _ROLE_MAX_LENGTH.get(role, length):
            continue  # reduced-size encoding only narrows a field: a wider one is no such value
        if role not in chosen or pref < chosen[role][0]:
            chosen[role] = (pref, i)
            kinds[role] = kind
    time_mode, ntp = T_EXPORT, False
    positions = {ie: i for i, (ie, length) in reversed(list(enumerate(fields))) if length != VARIABLE}
    for start_ie, end_ie, mode, kind in _TIMES:
        end_i = positions.get(end_ie)
        if end_i is None or not _fits(kind, fields[end_i][1]):
            continue
        time_mode, ntp = mode, kind == NTP
        chosen[R_END] = (0, end_i)
        kinds[R_END] = kind
        start_i = positions.get(start_ie)
        if start_i is not None and _fits(kind, fields[start_i][1]):
            chosen[R_START] = (0, start_i)
            kinds[R_START] = kind
        break
    by_field = {i: role for role, (_, i) in chosen.items()}
    plan: list[str] = []
    odd: list[int] = []
    value_index: dict[int, int] = {}
    n = 0
    for i, (_, length) in enumerate(fields):
        at = by_field.get(i)
        if at is None:
            plan.append("")
            continue
        role = at
        kind = kinds[role]
        if kind == ADDR4:
            plan.append("4s")
        elif kind == ADDR6:
            plan.append("16s")
        elif length in _INT_CODES:
            plan.append(_INT_CODES[length])
        else:
            plan.append(f"{length}s")
            odd.append(role)
        value_index[role] = n
        n += 1
    indices = [value_index.get(role, n + role) for role in range(ROLES)]
    values = tuple(value_index.get(role, -1) for role in range(ROLES))
    variable = any(length == VARIABLE for _, length in fields)
    length = sum(1 if ln == VARIABLE else ln for _, ln in fields)
    tpl = Template(tid, fields, options, refreshed, length, variable, tuple(plan), itemgetter(*indices),
                   _DEFAULTS, tuple(odd), time_mode, ntp, None, values=values)
    if not variable:
        tpl.fixed = struct.Struct(_format(fields, tpl.plan, ()))
    return tpl


_TIME_CODE = {
    T_UPTIME: ("ago = (uptime - {e}) & 0xFFFFFFFF",
               "end = export - (ago if ago < 0x80000000 else ago - 0x100000000) / 1000.0",
               "span = ({e} - {s}) & 0xFFFFFFFF", "duration = span / 1000.0 if span < 0x80000000 else 0.0"),
    T_SYSINIT: ("end = (base + {e}) / 1000.0", "duration = ({e} - {s}) / 1000.0"),
    T_MS: ("end = {e} / 1000.0", "duration = ({e} - {s}) / 1000.0"),
    T_S: ("end = float({e})", "duration = float({e} - {s})"),
    T_NTP: ("end = ({e} >> 32) - 2208988800 + ({e} & 0xFFFFFFFF) / 4294967296.0",
            "duration = end - (({s} >> 32) - 2208988800 + ({s} & 0xFFFFFFFF) / 4294967296.0)"),
    T_DELTA_US: ("end = export - {e} / 1e6", "duration = ({s} - {e}) / 1e6"),
    T_EXPORT: ("end = export",),
}
_BUILD_GLOBALS = {"Event": Event, "NETWORK": NETWORK, "PROTO": _PROTO, "ntoa": socket.inet_ntoa,
                  "ntop": socket.inet_ntop, "AF_INET6": socket.AF_INET6, "from_bytes": int.from_bytes}


def compile_builder(tpl: Template, mode: int) -> Callable[..., None]:
    """Compile the loop that turns a template's unpacked records into flow Events, for one time mode.

    The source is assembled only from the fixed snippets above and integer indices (never from
    datagram bytes), and runs once per record: a loop of its own per template saves the generic
    path's lookups and branches, most of the cost of a record after the Event itself.
    """
    v = tpl.values
    n = sum(1 for i in v if i >= 0)
    names = [f"v{i}" for i in range(n)]

    def val(role: int, default: str) -> str:
        return names[v[role]] if v[role] >= 0 else default

    body: list[str] = [f"{names[v[r]]} = from_bytes({names[v[r]]}, 'big')" for r in tpl.odd]
    for role, var in ((R_SRC, "src"), (R_DST, "dst")):
        if v[role] < 0:
            body.append(f"{var} = None")
            continue
        raw = names[v[role]]
        conv = f"ntoa({raw})" if tpl.plan[[i for i, c in enumerate(tpl.plan) if c][v[role]]] == "4s" \
            else f"ntop(AF_INET6, {raw})"
        body += [f"{var} = addr.get({raw})", f"if {var} is None:", f"    {var} = addr[{raw}] = {conv}"]
    code = _TIME_CODE[mode if v[R_END] >= 0 else T_EXPORT]
    end, start = val(R_END, "0"), val(R_START, "")
    body.append(code[0].format(e=end, s=start))
    if mode == T_UPTIME and v[R_END] >= 0:
        body.append(code[1].format(e=end, s=start))
        rest = code[2:]
    else:
        rest = code[1:]
    if rest and start:
        body += [line.format(e=end, s=start) for line in rest]
        body += ["if duration < 0.0:", "    duration = 0.0"]
    else:
        body.append("duration = 0.0")
    body += ["if not earliest <= end <= latest:", "    end = repair(end, export, received)"]
    proto, flags = val(R_PROTO, "0"), val(R_FLAGS, "0")
    sport, dport = val(R_SPORT, "None"), val(R_DPORT, "None")
    attrs = (f"attrs={{'flow': True, 'packets': {val(R_PACKETS, '0')}, 'bytes': {val(R_BYTES, '0')}, "
             "'duration': duration, 'exporter': exporter}")
    if v[R_ICMP] >= 0:
        icmp = names[v[R_ICMP]]
    elif v[R_ICMP_TYPE] >= 0:
        icmp = f"{names[v[R_ICMP_TYPE]]} * 256 + {val(R_ICMP_CODE, '0')}"
    else:
        icmp = dport
    body += [
        f"if {proto} == 6:",
        f"    append(Event(end, source, NETWORK, src, dst, {sport}, {dport}, 'tcp', {flags}, {attrs}))",
        f"elif {proto} == 1 or {proto} == 58:",
        f"    append(Event(end, source, NETWORK, src, dst, 0, {icmp}, PROTO[{proto}], 0, {attrs}))",
        "else:",
        f"    name = PROTO[{proto}] if {proto} < 256 else str({proto})",
        f"    append(Event(end, source, NETWORK, src, dst, {sport}, {dport}, name, 0, {attrs}))",
    ]
    target = (", ".join(names) + ("," if n == 1 else "")) if n else "_"
    src = ("def build(rows, append, source, exporter, export, uptime, base, received, addr, repair,\n"
           "          earliest, latest):\n"
           f"    for {target} in rows:\n" + "".join(f"        {line}\n" for line in body))
    scope: dict[str, Any] = {}
    exec(compile(src, f"<netflow template {tpl.tid}>", "exec"), dict(_BUILD_GLOBALS), scope)  # noqa: S102
    build: Callable[..., None] = scope["build"]
    return build


def _fits(kind: str, length: int) -> bool:
    if kind == ADDR4:
        return length == 4
    if kind == ADDR6:
        return length == 16
    if kind == NTP:
        return length == 8
    return 1 <= length <= 8


def _format(fields: tuple[tuple[int, int], ...], plan: tuple[str, ...], var_lengths: tuple[int, ...]) -> str:
    """The struct format of one record layout: roles by their codes, everything else as padding."""
    parts = ["!"]
    pad = 0
    k = 0
    for (_, length), code in zip(fields, plan):
        if code:
            if pad:
                parts.append(f"{pad}x")
                pad = 0
            parts.append(code)
        elif length == VARIABLE:
            pad += var_lengths[k]
            k += 1
        else:
            pad += length
    if pad:
        parts.append(f"{pad}x")
    return "".join(parts)


@dataclass(slots=True)
class Domain:
    """Template state of one exporter's source id (v9) or observation domain (IPFIX)."""

    templates: dict[int, Template] = field(default_factory=dict)
    sysinit_ms: int | None = None  # systemInitTimeMilliseconds, from an options record (IPFIX uptime times)
    last_sequence: int | None = None
    last_advance: int = 0
    numbered_after: bool | None = None  # the exporter numbers a message by its last record, not its first


@dataclass(slots=True)
class _Pending:
    key: tuple[str, int, int]
    tid: int
    body: bytes
    ctx: tuple[float, int | None, float]  # export time, uptime (v9), receipt time


class FlowDecoder:
    """Decodes export datagrams from any number of exporters into flow Events, keeping their templates."""

    def __init__(self, skips: SkipCounter, now: Callable[[], datetime] = system_now, *,
                 template_ttl_s: float = 1800.0, max_domains: int = 4096, max_templates: int = 1024,
                 pending_sets: int = 256, pending_bytes: int = 1 << 20, source: str | None = None) -> None:
        self.skips = skips
        self.template_ttl_s = template_ttl_s
        self.max_domains = max_domains
        self.max_templates = max_templates
        self.pending_sets = pending_sets
        self.pending_bytes = pending_bytes
        self.source = source  # one source name for every exporter (a file's); default "netflow:<exporter>"
        self.counters: Counter[str] = Counter()
        self._receipt = ReceiptTime(now)
        self._latest = self._receipt.now() + 86_400.0
        self._domains: OrderedDict[tuple[str, int, int], Domain] = OrderedDict()
        self._pending: deque[_Pending] = deque()
        self._pending_keys: Counter[tuple[tuple[str, int, int], int]] = Counter()
        self._pending_size = 0
        self._addr: dict[bytes, str] = {}
        self._names: dict[str, str] = {}

    # ------------------------------------------------------------------ datagrams

    def decode(self, data: bytes, exporter: str, received: float) -> list[Event]:
        """Decode one export datagram from `exporter` received at `received` (epoch seconds); never raises."""
        out: list[Event] = []
        self.counters["datagrams"] += 1
        if len(data) < 4:
            self.skips.skip("truncated export header", f"{exporter}: {len(data)} bytes")
            return out
        version = data[0] << 8 | data[1]
        try:
            if version == V5:
                self._v5(data, exporter, received, out)
            elif version == V9:
                self._v9(data, exporter, received, out)
            elif version == IPFIX:
                self._ipfix(data, exporter, received, out)
            else:
                self.skips.skip("unknown export version", f"{exporter}: version {version}")
        except FlowError as exc:
            self.skips.skip(exc.reason, f"{exporter}: {exc.detail}")
        except (struct.error, IndexError, ValueError, OverflowError) as exc:
            self.skips.skip("malformed export datagram", f"{exporter}: {exc}")
        self.counters["flows"] += len(out)
        return out

    def flush_pending(self) -> None:
        """Count every data set still waiting for its template as `no template` and forget it."""
        while self._pending:
            self._drop_pending(self._pending.popleft(), "still waiting at the end")

    @property
    def templates(self) -> int:
        """Templates held now, over every exporter and domain."""
        return sum(len(d.templates) for d in self._domains.values())

    def _name(self, exporter: str) -> str:
        name = self._names.get(exporter)
        if name is None:
            if len(self._names) > 65536:
                self._names.clear()
            name = self._names[exporter] = self.source or f"netflow:{exporter}"
        return name

    def _domain(self, key: tuple[str, int, int]) -> Domain:
        domains = self._domains
        dom = domains.get(key)
        if dom is None:
            if len(domains) >= self.max_domains:
                old, _ = domains.popitem(last=False)
                self.counters["domains_evicted"] += 1
                log.debug("evicted the template state of %s (more than %d domains)", old, self.max_domains)
            dom = domains[key] = Domain()
        else:
            domains.move_to_end(key)
        return dom

    def _sequence(self, dom: Domain, seq: int, advance: int) -> None:
        """Count what the exporter's sequence numbers say was lost on the way.

        RFC 3954/7011 number a message by what came before it; some exporters (softflowd's IPFIX) by
        what it ends with. The first two messages of a domain tell which, and only then is a gap lost.
        """
        prev, prev_advance = dom.last_sequence, dom.last_advance
        dom.last_sequence, dom.last_advance = seq, advance
        if prev is None:
            return
        before = (seq - prev - prev_advance) & MASK32
        after = (seq - prev - advance) & MASK32
        if dom.numbered_after is None:
            if (before == 0) != (after == 0):
                dom.numbered_after = after == 0
            gap = min(before, after)
        else:
            gap = after if dom.numbered_after else before
        if gap == 0:
            return
        if gap < HALF32:
            self.counters["lost"] += gap
        else:
            self.counters["reordered"] += 1

    # ------------------------------------------------------------------ NetFlow v5

    def _v5(self, data: bytes, exporter: str, received: float, out: list[Event]) -> None:
        if len(data) < V5_HEADER.size:
            raise FlowError("truncated export header", f"v5: {len(data)} bytes")
        _, count, uptime, secs, nsecs, sequence, engine_type, engine_id, _ = V5_HEADER.unpack_from(data)
        available = (len(data) - V5_HEADER.size) // V5_RECORD.size
        if count > V5_MAX_COUNT or count != available:
            self.skips.skip("v5 count does not match length",
                            f"{exporter}: count {count}, room for {available} records")
            count = min(count, available)
        dom = self._domain((exporter, V5, engine_type << 8 | engine_id))
        self._sequence(dom, sequence, count)
        export = secs + nsecs / 1e9
        boot = export - uptime * 0.001
        body = data[V5_HEADER.size : V5_HEADER.size + count * V5_RECORD.size]
        source = self._name(exporter)
        addr = self._addr
        if len(addr) > ADDR_CACHE:
            addr.clear()
        ntoa = socket.inet_ntoa
        earliest, latest = EARLIEST_TIME, min(self._latest, export + AFTER_EXPORT_S)
        append = out.append
        for s, d, packets, octets, first, last, sport, dport, flags, proto in V5_RECORD.iter_unpack(body):
            src = addr.get(s)
            if src is None:
                src = addr[s] = ntoa(s)
            dst = addr.get(d)
            if dst is None:
                dst = addr[d] = ntoa(d)
            if first <= last <= uptime:  # the usual case: no uptime wrap in between
                end = boot + last * 0.001
                duration = (last - first) * 0.001
            else:
                ago = (uptime - last) & MASK32
                end = export - (ago if ago < HALF32 else ago - 0x100000000) / 1000.0
                span = (last - first) & MASK32
                duration = span / 1000.0 if span < HALF32 else 0.0
            if not earliest <= end <= latest:
                end = self._repair(end, export, received)
            if proto == 6:
                append(Event(end, source, NETWORK, src, dst, sport, dport, "tcp", flags,
                             attrs={"flow": True, "packets": packets, "bytes": octets, "duration": duration,
                                    "exporter": exporter}))
            else:
                if proto in _ICMP:
                    sport = 0
                append(Event(end, source, NETWORK, src, dst, sport, dport, _PROTO[proto], 0,
                             attrs={"flow": True, "packets": packets, "bytes": octets, "duration": duration,
                                    "exporter": exporter}))

    def _repair(self, t: float, export: float, received: float) -> float:
        """A flow time out of range: the export time if plausible, else the receipt time (counted)."""
        if t > export + AFTER_EXPORT_S and self._receipt.plausible(export):
            # A flow cannot end after the datagram that reports it was sent. Believed, one garbled (or
            # hostile) record would move every detector's clock hours ahead and end the windows of
            # everything in progress.
            self.skips.repair("flow ends after its export time", f"{t!r} > {export!r}")
            return export
        if self._receipt.plausible(t):
            self._latest = self._receipt.now() + 86_400.0
            return t
        if self._receipt.plausible(export):
            self.skips.repair("flow time out of range", f"{t!r}")
            return export
        self.skips.repair("export time out of range", f"{export!r}")
        return received if self._receipt.plausible(received) else self._receipt.now()

    # ------------------------------------------------------------------ NetFlow v9 and IPFIX

    def _v9(self, data: bytes, exporter: str, received: float, out: list[Event]) -> None:
        if len(data) < V9_HEADER.size:
            raise FlowError("truncated export header", f"v9: {len(data)} bytes")
        _, _count, uptime, secs, sequence, source_id = V9_HEADER.unpack_from(data)
        key = (exporter, V9, source_id)
        dom = self._domain(key)
        self._sequence(dom, sequence, 1)  # v9 numbers export packets
        self._sets(data, V9_HEADER.size, len(data), key, dom, (float(secs), uptime, received), out)

    def _ipfix(self, data: bytes, exporter: str, received: float, out: list[Event]) -> None:
        if len(data) < IPFIX_HEADER.size:
            raise FlowError("truncated export header", f"ipfix: {len(data)} bytes")
        _, length, secs, sequence, domain_id = IPFIX_HEADER.unpack_from(data)
        if length < IPFIX_HEADER.size or length > len(data):
            raise FlowError("ipfix length does not match datagram", f"header {length}, datagram {len(data)}")
        key = (exporter, IPFIX, domain_id)
        dom = self._domain(key)
        counters = self.counters
        before, held = counters["records"], counters["held"]
        self._sets(data, IPFIX_HEADER.size, length, key, dom, (float(secs), None, received), out)
        # IPFIX numbers data records. Flow records only are counted here (exporters differ on options
        # records); a held-back set's records are unknown until its template comes: the count restarts.
        self._sequence(dom, sequence, counters["records"] - before)
        if counters["held"] != held:
            dom.last_sequence = None

    def _sets(self, data: bytes, off: int, end: int, key: tuple[str, int, int], dom: Domain,
              ctx: tuple[float, int | None, float], out: list[Event]) -> None:
        ipfix = key[1] == IPFIX
        while off + 4 <= end:
            set_id, set_len = SET_HEADER.unpack_from(data, off)
            if set_len < 4 or off + set_len > end:
                raise FlowError("bad set length", f"set {set_id} length {set_len} at {off}, datagram ends at {end}")
            start, off = off + 4, off + set_len
            try:
                if set_id >= MIN_DATA_SET:
                    self._data_set(data[start:off], set_id, key, dom, ctx, out)
                elif ipfix and set_id in (IPFIX_TEMPLATE_SET, IPFIX_OPTIONS_SET):
                    self._ipfix_templates(data, start, off, set_id == IPFIX_OPTIONS_SET, key, dom, ctx, out)
                elif not ipfix and set_id == V9_TEMPLATE_SET:
                    self._v9_templates(data, start, off, key, dom, ctx, out)
                elif not ipfix and set_id == V9_OPTIONS_SET:
                    self._v9_options_templates(data, start, off, key, dom, ctx, out)
                else:
                    self.skips.skip("reserved set id", f"{key[0]}: set {set_id}")
            except FlowError as exc:
                self.skips.skip(exc.reason, f"{key[0]}: {exc.detail}")
            except (struct.error, IndexError, ValueError, OverflowError) as exc:
                self.skips.skip("malformed set", f"{key[0]}: set {set_id}: {exc}")
        if end - off >= 4:
            self.skips.skip("trailing bytes after the last set", f"{key[0]}: {end - off} bytes")

    def _v9_templates(self, data: bytes, off: int, end: int, key: tuple[str, int, int], dom: Domain,
                      ctx: tuple[float, int | None, float], out: list[Event]) -> None:
        while off + 4 <= end:
            tid, count = SET_HEADER.unpack_from(data, off)
            off += 4
            if count == 0 and tid == 0:
                return  # padding
            if off + count * 4 > end:
                raise FlowError("truncated template", f"template {tid}: {count} fields")
            fields = tuple(struct.unpack_from(f"!{2 * count}H", data, off))
            off += count * 4
            self._define(tid, tuple(zip(fields[::2], fields[1::2])), False, key, dom, ctx, out)

    def _v9_options_templates(self, data: bytes, off: int, end: int, key: tuple[str, int, int], dom: Domain,
                              ctx: tuple[float, int | None, float], out: list[Event]) -> None:
        while off + 6 <= end:
            tid, scope_len, option_len = struct.unpack_from("!HHH", data, off)
            off += 6
            if tid == 0:
                return  # padding
            if scope_len % 4 or option_len % 4 or off + scope_len + option_len > end:
                raise FlowError("truncated template", f"options template {tid}: {scope_len}+{option_len} bytes")
            n = (scope_len + option_len) // 2
            values = struct.unpack_from(f"!{n}H", data, off)
            off += scope_len + option_len
            self._define(tid, tuple(zip(values[::2], values[1::2])), True, key, dom, ctx, out)

    def _ipfix_templates(self, data: bytes, off: int, end: int, options: bool, key: tuple[str, int, int],
                         dom: Domain, ctx: tuple[float, int | None, float], out: list[Event]) -> None:
        while off + 4 <= end:
            tid, count = SET_HEADER.unpack_from(data, off)
            off += 4
            if count == 0:
                self._withdraw(tid, options, key, dom)
                continue
            if options:
                if off + 2 > end:
                    raise FlowError("truncated template", f"options template {tid}")
                scope = U16.unpack_from(data, off)[0]
                off += 2
                if scope == 0 or scope > count:
                    raise FlowError("bad options template", f"template {tid}: scope {scope} of {count} fields")
            fields: list[tuple[int, int]] = []
            for _ in range(count):
                if off + 4 > end:
                    raise FlowError("truncated template", f"template {tid}: {count} fields")
                ie, length = SET_HEADER.unpack_from(data, off)
                off += 4
                if ie & ENTERPRISE_BIT:
                    if off + 4 > end:
                        raise FlowError("truncated template", f"template {tid}: enterprise number")
                    off += 4
                    ie = -1  # an enterprise field: carried over, never read
                fields.append((ie, length))
            self._define(tid, tuple(fields), options, key, dom, ctx, out)

    def _withdraw(self, tid: int, options: bool, key: tuple[str, int, int], dom: Domain) -> None:
        set_id = IPFIX_OPTIONS_SET if options else IPFIX_TEMPLATE_SET
        if tid == set_id:  # "all templates" of this kind
            for t in [t for t, tpl in dom.templates.items() if tpl.options == options]:
                del dom.templates[t]
            self.counters["withdrawals"] += 1
        elif tid >= MIN_DATA_SET:
            if dom.templates.pop(tid, None) is not None:
                self.counters["withdrawals"] += 1
        else:
            raise FlowError("bad template id", f"withdrawal of {tid}")

    def _define(self, tid: int, fields: tuple[tuple[int, int], ...], options: bool, key: tuple[str, int, int],
                dom: Domain, ctx: tuple[float, int | None, float], out: list[Event]) -> None:
        if tid < MIN_DATA_SET:
            raise FlowError("bad template id", f"template {tid}")
        if not fields or len(fields) > MAX_FIELDS:
            raise FlowError("bad template field count", f"template {tid}: {len(fields)} fields")
        if key[1] == V9 and any(length == VARIABLE for _, length in fields):
            raise FlowError("bad template", f"template {tid}: variable-length field in v9")
        old = dom.templates.get(tid)
        if old is not None and old.fields == fields and old.options == options:
            old.refreshed = ctx[2]  # the usual case: the exporter resends what we hold
            return
        tpl = compile_template(tid, fields, options, ctx[2])
        if tpl.length == 0:
            raise FlowError("bad template", f"template {tid}: records of zero length")
        if old is None and len(dom.templates) >= self.max_templates:
            raise FlowError("too many templates", f"domain {key[2]} holds {len(dom.templates)}")
        dom.templates[tid] = tpl
        self.counters["options_templates" if options else "templates"] += 1
        if self._pending_keys.get((key, tid)):
            self._replay_pending(key, tid, dom, out)

    # ------------------------------------------------------------------ data

    def _data_set(self, body: bytes, tid: int, key: tuple[str, int, int], dom: Domain,
                  ctx: tuple[float, int | None, float], out: list[Event]) -> None:
        tpl = dom.templates.get(tid)
        if tpl is not None and ctx[2] - tpl.refreshed > self.template_ttl_s:
            del dom.templates[tid]
            self.counters["templates_expired"] += 1
            tpl = None
        if tpl is None:
            self._hold(key, tid, body, ctx)
            return
        if tpl.options:
            self._options_records(tpl, body, dom)
            return
        before = len(out)
        if tpl.fixed is not None:
            size = tpl.fixed.size
            n = len(body) // size
            rows: Any = tpl.fixed.iter_unpack(body[: n * size]) if n else ()
        else:
            rows = self._variable_rows(tpl, body)
        self._flows(rows, tpl, key, dom, ctx, out)
        self.counters["records"] += len(out) - before

    def _variable_rows(self, tpl: Template, body: bytes) -> list[tuple[Any, ...]]:
        """Unpack records with variable-length fields, one layout per combination of lengths."""
        rows: list[tuple[Any, ...]] = []
        off, end = 0, len(body)
        fields = tpl.fields
        while end - off >= tpl.length:
            lengths: list[int] = []
            p = off
            for _, length in fields:
                if length != VARIABLE:
                    p += length
                    continue
                if p >= end:
                    raise FlowError("truncated record", f"template {tpl.tid}: variable-length field")
                n = body[p]
                if n == 255:
                    if p + 3 > end:
                        raise FlowError("truncated record", f"template {tpl.tid}: variable-length field")
                    n = U16.unpack_from(body, p + 1)[0]
                    lengths.append(3 + n)
                    p += 3 + n
                else:
                    lengths.append(1 + n)
                    p += 1 + n
            if p > end:
                raise FlowError("truncated record", f"template {tpl.tid}: record runs past its set")
            layout = tuple(lengths)
            unpacker = tpl.layouts.get(layout)
            if unpacker is None:
                if len(tpl.layouts) >= MAX_LAYOUTS:
                    tpl.layouts.clear()
                unpacker = tpl.layouts[layout] = struct.Struct(_format(fields, tpl.plan, layout))
            rows.append(unpacker.unpack_from(body, off))
            off = p
        return rows

    def _options_records(self, tpl: Template, body: bytes, dom: Domain) -> None:
        rows = tpl.fixed.iter_unpack(body[: len(body) // tpl.fixed.size * tpl.fixed.size]) \
            if tpl.fixed is not None else self._variable_rows(tpl, body)
        get, pad, odd = tpl.getter, tpl.pad, tpl.odd
        for vals in rows:
            self.skips.ignore("options record")
            self.counters["option_records"] += 1
            sysinit = get(vals + pad)[R_SYSINIT]
            if sysinit is not None:
                dom.sysinit_ms = int.from_bytes(sysinit, "big") if R_SYSINIT in odd else sysinit

    def _flows(self, rows: Any, tpl: Template, key: tuple[str, int, int], dom: Domain,
               ctx: tuple[float, int | None, float], out: list[Event]) -> None:
        exporter = key[0]
        export, uptime, received = ctx
        mode, base = tpl.time_mode, 0
        if mode == T_UPTIME and uptime is None:  # IPFIX: uptimes count from systemInitTimeMilliseconds
            if dom.sysinit_ms is None:
                mode = T_EXPORT
                self.skips.ignore("uptime times without systemInitTimeMilliseconds")
            else:
                mode, base = T_SYSINIT, dom.sysinit_ms
        build = tpl.builders.get(mode)
        if build is None:
            build = tpl.builders[mode] = compile_builder(tpl, mode)
        addr = self._addr
        if len(addr) > ADDR_CACHE:
            addr.clear()
        build(rows, out.append, self._name(exporter), exporter, export, uptime or 0, base, received, addr,
              self._repair, EARLIEST_TIME, min(self._latest, export + AFTER_EXPORT_S))

    # ------------------------------------------------------------------ data before its template

    def _hold(self, key: tuple[str, int, int], tid: int, body: bytes, ctx: tuple[float, int | None, float]) -> None:
        if len(body) > self.pending_bytes:
            self.skips.skip("no template", f"{key[0]}: template {tid} unknown (set too large to hold)")
            return
        entry = _Pending(key, tid, body, ctx)
        self._pending.append(entry)
        self._pending_keys[(key, tid)] += 1
        self._pending_size += len(body)
        self.counters["held"] += 1
        while len(self._pending) > self.pending_sets or self._pending_size > self.pending_bytes:
            self._drop_pending(self._pending.popleft(), "evicted")

    def _drop_pending(self, entry: _Pending, why: str) -> None:
        self._forget(entry)
        self.skips.skip("no template", f"{entry.key[0]}: template {entry.tid} unknown ({why})")

    def _forget(self, entry: _Pending) -> None:
        k = (entry.key, entry.tid)
        self._pending_keys[k] -= 1
        if self._pending_keys[k] <= 0:
            del self._pending_keys[k]
        self._pending_size -= len(entry.body)

    def _replay_pending(self, key: tuple[str, int, int], tid: int, dom: Domain, out: list[Event]) -> None:
        keep: deque[_Pending] = deque()
        ready: list[_Pending] = []
        for entry in self._pending:
            (ready if entry.key == key and entry.tid == tid else keep).append(entry)
        self._pending = keep
        for entry in ready:
            self._forget(entry)
            if entry.ctx[2] < dom.templates[tid].refreshed - self.template_ttl_s:
                self.skips.skip("no template", f"{key[0]}: template {tid} came too late")
                continue
            self.counters["held_decoded"] += 1
            self._data_set(entry.body, tid, key, dom, entry.ctx, out)


def looks_like_export(payload: bytes) -> bool:
    """True when a UDP payload starts like a NetFlow v5, v9 or IPFIX export datagram."""
    n = len(payload)
    if n < 4:
        return False
    version, count = payload[0] << 8 | payload[1], payload[2] << 8 | payload[3]
    if version == V5:
        return 1 <= count <= V5_MAX_COUNT and n >= V5_HEADER.size + count * V5_RECORD.size
    if version == V9:
        if n < V9_HEADER.size + 4:
            return False
        set_id, set_len = SET_HEADER.unpack_from(payload, V9_HEADER.size)
        return bool((set_id in (0, 1) or set_id >= MIN_DATA_SET) and 4 <= set_len <= n - V9_HEADER.size)
    if version == IPFIX:
        if n < IPFIX_HEADER.size + 4 or count != n:
            return False
        set_id, set_len = SET_HEADER.unpack_from(payload, IPFIX_HEADER.size)
        return bool((set_id in (2, 3) or set_id >= MIN_DATA_SET) and 4 <= set_len <= n - IPFIX_HEADER.size)
    return False
