"""A small NetFlow v5/v9 and IPFIX encoder for tests: builds export datagrams byte by byte with struct.

Written from the RFCs (3954, 7011) and Cisco's v5 layout, independently of the decoder under test.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Flow:
    """One flow as an exporter would report it; times in milliseconds since the epoch."""

    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    flags: int
    packets: int
    octets: int
    start_ms: int
    end_ms: int

    @property
    def v6(self) -> bool:
        """True for an IPv6 flow."""
        return ":" in self.src


def _addr(a: str) -> bytes:
    return ipaddress.ip_address(a).packed


def v5(flows: Sequence[Flow], export_ms: int, uptime_ms: int, sequence: int = 0, engine: int = 0) -> bytes:
    """A v5 datagram; the flows' times become uptimes relative to export_ms - uptime_ms."""
    boot = export_ms - uptime_ms
    out = [struct.pack("!HHIIIIBBH", 5, len(flows), uptime_ms, export_ms // 1000, (export_ms % 1000) * 1_000_000,
                       sequence, 0, engine, 0)]
    for f in flows:
        out.append(struct.pack("!4s4s4sHHIIIIHHBBBBHHBBH", _addr(f.src), _addr(f.dst), b"\0" * 4, 1, 2,
                               f.packets, f.octets, (f.start_ms - boot) & 0xFFFFFFFF, (f.end_ms - boot) & 0xFFFFFFFF,
                               f.sport, f.dport, 0, f.flags, f.proto, 0, 0, 0, 24, 24, 0))
    return b"".join(out)


# Field lists: (IE id, length); an IE id above 0x7FFF with an enterprise number is written as (id, length, pen).
Field = tuple[int, int] | tuple[int, int, int]

V9_FIELDS_V4: tuple[Field, ...] = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 4), (1, 4), (22, 4), (21, 4),
                                   (10, 2), (14, 2))
V9_FIELDS_V6: tuple[Field, ...] = ((27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (6, 1), (2, 8), (1, 8), (22, 4),
                                   (21, 4))
IPFIX_FIELDS_V4: tuple[Field, ...] = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 2), (2, 8), (1, 8), (152, 8),
                                      (153, 8), (0x8001, 4, 29305), (96, 0xFFFF))


def _set(set_id: int, body: bytes, pad_to: int = 4) -> bytes:
    pad = (-len(body) - 4) % pad_to
    return struct.pack("!HH", set_id, 4 + len(body) + pad) + body + b"\0" * pad


def template_record(tid: int, fields: Sequence[Field]) -> bytes:
    """One template record (v9 or IPFIX; enterprise fields only in IPFIX)."""
    out = [struct.pack("!HH", tid, len(fields))]
    for f in fields:
        out.append(struct.pack("!HH", f[0], f[1]))
        if len(f) == 3:
            out.append(struct.pack("!I", f[2]))
    return b"".join(out)


def template_set(records: Iterable[bytes], ipfix: bool = False) -> bytes:
    """A template set (id 0 in v9, 2 in IPFIX)."""
    return _set(2 if ipfix else 0, b"".join(records))


def ipfix_options_template(tid: int, scope: Sequence[Field], fields: Sequence[Field]) -> bytes:
    """An IPFIX options template set (id 3) with one record."""
    body = struct.pack("!HHH", tid, len(scope) + len(fields), len(scope))
    body += b"".join(struct.pack("!HH", f[0], f[1]) for f in (*scope, *fields))
    return _set(3, body)


def v9_options_template(tid: int, scope: Sequence[Field], fields: Sequence[Field]) -> bytes:
    """A v9 options template flowset (id 1) with one record."""
    body = struct.pack("!HHH", tid, 4 * len(scope), 4 * len(fields))
    body += b"".join(struct.pack("!HH", f[0], f[1]) for f in (*scope, *fields))
    return _set(1, body)


def withdrawal(tid: int, options: bool = False) -> bytes:
    """An IPFIX template withdrawal (field count 0)."""
    return _set(3 if options else 2, struct.pack("!HH", tid, 0))


def encode_value(ie: int, length: int, f: Flow, boot_ms: int) -> bytes:
    """The bytes of one field of `f` (reduced-size integers as their low bytes, unknown IEs as zeros)."""
    if length == 0xFFFF:
        payload = b"app"
        return bytes([len(payload)]) + payload
    values = {
        8: _addr(f.src) if not f.v6 else None, 12: _addr(f.dst) if not f.v6 else None,
        27: _addr(f.src) if f.v6 else None, 28: _addr(f.dst) if f.v6 else None,
        7: f.sport, 11: f.dport, 4: f.proto, 6: f.flags, 2: f.packets, 1: f.octets,
        22: (f.start_ms - boot_ms) & 0xFFFFFFFF, 21: (f.end_ms - boot_ms) & 0xFFFFFFFF,
        152: f.start_ms, 153: f.end_ms, 150: f.start_ms // 1000, 151: f.end_ms // 1000,
        32: f.dport if f.proto in (1, 58) else 0,
    }
    v = values.get(ie)
    if isinstance(v, bytes):
        return v if len(v) == length else b"\0" * length
    return (v or 0).to_bytes(length, "big") if length else b""


def data_set(tid: int, fields: Sequence[Field], flows: Sequence[Flow], boot_ms: int = 0) -> bytes:
    """A data set of `flows` laid out by `fields`."""
    body = b"".join(encode_value(f[0] if len(f) == 2 else -1, f[1], fl, boot_ms) for fl in flows for f in fields)
    return _set(tid, body)


def v9(sets: Sequence[bytes], export_ms: int, uptime_ms: int, sequence: int = 0, source_id: int = 0) -> bytes:
    """A v9 datagram of the given flowsets (its count field counts sets here; decoders must not trust it)."""
    return struct.pack("!HHIIII", 9, len(sets), uptime_ms, export_ms // 1000, sequence, source_id) + b"".join(sets)


def ipfix(sets: Sequence[bytes], export_s: int, sequence: int = 0, domain: int = 0) -> bytes:
    """An IPFIX message of the given sets."""
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), export_s, sequence, domain) + body


def write_export_pcap(path: Path, datagrams: Sequence[bytes], exporter: str = "192.0.2.1",
                      collector: str = "192.0.2.2", start: float = 1_700_000_000.0) -> Path:
    """A pcap of the datagrams as UDP from exporter:2055 to collector:2055, written by scapy."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    packets = []
    for i, d in enumerate(datagrams):
        p = Ether() / IP(src=exporter, dst=collector) / UDP(sport=2055, dport=2055) / Raw(d)
        p.time = start + i
        packets.append(p)
    wrpcap(str(path), packets)
    return path
