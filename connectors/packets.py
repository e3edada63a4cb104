"""Packets from pcap and pcapng files: raw records through scapy's readers, headers parsed by struct.

Only what a detector needs is dissected fully (DNS by scapy, ARP by its fixed layout, the datagram
an ICMP destination-unreachable quotes, an SCTP packet's first chunk type); every other packet
costs one header parse. Malformed packets are counted and skipped, never raised; so are
packets stamped before 1990 or more than a day ahead of the clock, and what a corrupt pcapng block
hides is counted in bytes.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import socket
import struct
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from scapy.data import MTU
from scapy.error import Scapy_Exception
from scapy.layers.dns import DNS
from scapy.utils import RawPcapNgReader, RawPcapReader

from .errors import SourceError, open_source
from .events import ARP, AUTH, EARLIEST_TIME, NETWORK, Event, latest_time, system_now
from .events import DNS as DNS_KIND
from .skips import SkipCounter
from .snmp_packets import SNMP_PORTS, snmp_attrs

log = logging.getLogger(__name__)

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

# Link-layer header types (tcpdump.org/linktypes.html) this reader understands.
LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_RAW_OLD, LINK_LOOP = 0, 1, 101, 12, 108
LINK_SLL, LINK_SLL2, LINK_IPV4, LINK_IPV6 = 113, 276, 228, 229

ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_VLAN, ETH_QINQ = 0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8

DNS_PORTS = frozenset({53, 5353})
SLOW_UDP_PORTS = DNS_PORTS | SNMP_PORTS
RELEASE_EVERY = 8 << 20  # bytes of mapped capture between madvise(MADV_DONTNEED) calls
FTP_PORT = 21
SCTP = 132
UNREACHABLE_V4, UNREACHABLE_V6 = 3, 1  # ICMP and ICMPv6 destination-unreachable types

_u16 = struct.Struct("!H").unpack_from
_ipv4 = struct.Struct("!BxHxxxxBB2x4s4s").unpack_from
_ports_seq_flags = struct.Struct("!HH8xBB").unpack_from
_ports = struct.Struct("!HH").unpack_from
_arp = struct.Struct("!HHBBH6s4s6s4s").unpack_from
# Ethernet type, IPv4 version/IHL, flags/fragment, protocol, addresses, then TCP/UDP ports and
# (for TCP) the data-offset and flags bytes: 48 bytes from the start of the frame.
_ETH_IPV4_L4 = struct.Struct("!12xHBxxxxxHxB2x4s4sHH8xBB").unpack_from
_ntoa = socket.inet_ntoa


def _ntop6(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, b)


def _mac(b: bytes) -> str:
    return b.hex(":")


class PacketDecoder:
    """Turns one raw link-layer frame into zero or more Events."""

    def __init__(self, source: str, skips: SkipCounter, latest: float = math.inf) -> None:
        self.source = source
        self.skips = skips
        self.latest = latest  # the latest plausible packet time: a day after the file is read

    def time_ok(self, ts: float, ref: str) -> bool:
        """True for a plausible capture time; an implausible one is counted as a skipped packet."""
        if EARLIEST_TIME <= ts <= self.latest:
            return True
        self.skips.skip("timestamp out of range", f"{ref}: {ts!r}")
        return False

    def decode(self, data: bytes, linktype: int, ts: float, ref: str | None = None) -> list[Event]:
        """Decode one frame; returns [] for frames of no interest, skips what is malformed."""
        try:
            return self._decode(data, linktype, ts, ref)
        except (struct.error, IndexError, ValueError, OSError) as exc:
            self.skips.skip("malformed packet", f"{ref}: {exc}")
            return []

    def _decode(self, data: bytes, linktype: int, ts: float, ref: str | None) -> list[Event]:
        eth_src = eth_dst = None
        if linktype == LINK_ETHERNET:
            if len(data) < 14:
                self.skips.skip("truncated ethernet header", str(ref))
                return []
            ethertype = _u16(data, 12)[0]
            off = 14
            while ethertype in (ETH_VLAN, ETH_QINQ):
                ethertype = _u16(data, off + 2)[0]
                off += 4
            if ethertype == ETH_ARP:
                eth_dst, eth_src = data[0:6], data[6:12]
        elif linktype in (LINK_RAW, LINK_RAW_OLD, LINK_IPV4, LINK_IPV6):
            off = 0
            version = data[0] >> 4
            ethertype = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
        elif linktype in (LINK_NULL, LINK_LOOP):
            off = 4
            version = data[4] >> 4
            ethertype = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
        elif linktype == LINK_SLL:
            off = 16
            ethertype = _u16(data, 14)[0]
        elif linktype == LINK_SLL2:
            off = 20
            ethertype = _u16(data, 0)[0]
        else:
            self.skips.skip(f"unsupported link type {linktype}", str(ref))
            return []

        if ethertype == ETH_IPV4:
            if len(data) < off + 20:
                self.skips.skip("truncated IPv4 header", str(ref))
                return []
            vihl, total_len, ttl, proto, s, d = _ipv4(data, off)
            if vihl >> 4 != 4:
                self.skips.skip("bad IPv4 version", str(ref))
                return []
            ihl = (vihl & 0x0F) * 4
            if ihl < 20:
                self.skips.skip("bad IPv4 header length", str(ref))
                return []
            frag = _u16(data, off + 6)[0]
            if frag & 0x1FFF:  # later fragments carry no transport header
                self.skips.ignore("non-first IPv4 fragment")
                return []
            src, dst = _ntoa(s), _ntoa(d)
            end = off + total_len if total_len >= ihl else len(data)
            return self._transport(data, off + ihl, min(end, len(data)), proto, src, dst, ts, ref, ttl)
        if ethertype == ETH_IPV6:
            if len(data) < off + 40:
                self.skips.skip("truncated IPv6 header", str(ref))
                return []
            proto = data[off + 6]
            hlim = data[off + 7]
            src, dst = _ntop6(data[off + 8 : off + 24]), _ntop6(data[off + 24 : off + 40])
            off += 40
            # Walk the common extension headers (hop-by-hop, routing, destination options).
            while proto in (0, 43, 60) and len(data) >= off + 2:
                proto, off = data[off], off + (data[off + 1] + 1) * 8
            if proto == 44:  # fragment header: only the first fragment carries the ports
                if len(data) < off + 8:
                    self.skips.skip("truncated IPv6 fragment header", str(ref))
                    return []
                if _u16(data, off + 2)[0] >> 3:
                    self.skips.ignore("non-first IPv6 fragment")
                    return []
                proto, off = data[off], off + 8
            return self._transport(data, off, len(data), proto, src, dst, ts, ref, hlim)
        if ethertype == ETH_ARP:
            return self._arp(data, off, eth_src, eth_dst, ts, ref)
        return []

    def _transport(
        self, data: bytes, off: int, end: int, proto: int, src: str, dst: str,
        ts: float, ref: str | None, ttl: int,
    ) -> list[Event]:
        if proto == 6:
            if end < off + 14:
                self.skips.skip("truncated TCP header", str(ref))
                return []
            sport, dport, doff, flags = _ports_seq_flags(data, off)
            ev = Event(ts, self.source, NETWORK, src, dst, sport, dport, "tcp", flags, ref=ref)
            if sport == FTP_PORT or dport == FTP_PORT:
                header_len = (doff >> 4) * 4
                if header_len < 20:
                    self.skips.skip("bad TCP data offset", str(ref))
                    return [ev]
                return self._ftp(ev, data, off + header_len, end)
            return [ev]
        if proto == 17:
            if end < off + 8:
                self.skips.skip("truncated UDP header", str(ref))
                return []
            sport, dport = _ports(data, off)
            if sport in DNS_PORTS or dport in DNS_PORTS:
                dns = self._dns(data[off + 8 : end], src, dst, sport, dport, ts, ref)
                if dns is not None:
                    return [dns]
            if sport in SNMP_PORTS or dport in SNMP_PORTS:
                snmp = snmp_attrs(data[off + 8 : end])
                if snmp is not None:
                    return [Event(ts, self.source, NETWORK, src, dst, sport, dport, "udp", attrs={"snmp": snmp},
                                  ref=ref)]
            return [Event(ts, self.source, NETWORK, src, dst, sport, dport, "udp", ref=ref)]
        if proto == 1 or proto == 58:
            if end < off + 2:
                self.skips.skip("truncated ICMP header", str(ref))
                return []
            icmp_type = data[off]
            attrs: dict[str, Any] = {"ttl": ttl}
            if icmp_type == (UNREACHABLE_V4 if proto == 1 else UNREACHABLE_V6):
                _quoted(data, off + 8, end, proto == 1, attrs)
            # ICMP type and code travel in the port fields, as Zeek's conn.log does.
            return [Event(ts, self.source, NETWORK, src, dst, icmp_type, data[off + 1],
                          "icmp" if proto == 1 else "icmp6", attrs=attrs, ref=ref)]
        if proto == SCTP:
            if end < off + 12:
                self.skips.skip("truncated SCTP header", str(ref))
                return []
            sport, dport = _ports(data, off)
            chunk = {"chunk": data[off + 12]} if end > off + 12 else None
            return [Event(ts, self.source, NETWORK, src, dst, sport, dport, "sctp", attrs=chunk, ref=ref)]
        return [Event(ts, self.source, NETWORK, src, dst, proto=str(proto), ref=ref)]

    def _ftp(self, ev: Event, data: bytes, start: int, end: int) -> list[Event]:
        payload = data[start:end]
        if not payload:
            return [ev]
        out = [ev]
        if ev.sport == FTP_PORT and payload[:3] in (b"530", b"230") and payload[3:4] in (b" ", b"-"):
            ok = payload[:3] == b"230"
            out.append(Event(ev.time, self.source, AUTH, ev.dst, ev.src, ev.dport, FTP_PORT, "ftp",
                             outcome="success" if ok else "failure",
                             raw=payload[:120].decode("latin-1").rstrip(), ref=ev.ref))
        return out

    def _dns(
        self, payload: bytes, src: str, dst: str, sport: int, dport: int, ts: float, ref: str | None,
    ) -> Event | None:
        if len(payload) < 12:
            return None
        try:
            msg = DNS(payload)
        except (Scapy_Exception, struct.error, IndexError, ValueError, TypeError) as exc:
            self.skips.skip("malformed DNS message", f"{ref}: {exc}")
            return None
        qd = msg.qd
        if not qd:
            return None
        q = qd[0] if isinstance(qd, list) else qd
        qname = getattr(q, "qname", b"")
        if isinstance(qname, bytes):
            qname = qname.decode("latin-1")
        if not qname or qname == ".":
            # scapy answers a compression loop with an empty name after logging it; treat the
            # message as malformed rather than as a query for the root.
            self.skips.skip("malformed DNS message", f"{ref}: empty or looping question name")
            return None
        attrs: dict[str, Any] = {
            "qname": qname.rstrip("."),
            "qtype": int(getattr(q, "qtype", 0) or 0),
            "response": bool(msg.qr),
            "rcode": int(msg.rcode or 0),
        }
        return Event(ts, self.source, DNS_KIND, src, dst, sport, dport, "udp", attrs=attrs, ref=ref)

    def _arp(
        self, data: bytes, off: int, eth_src: bytes | None, eth_dst: bytes | None,
        ts: float, ref: str | None,
    ) -> list[Event]:
        if len(data) < off + 28:
            self.skips.skip("truncated ARP packet", str(ref))
            return []
        htype, ptype, hlen, plen, op, hwsrc, psrc, hwdst, pdst = _arp(data, off)
        if htype != 1 or ptype != ETH_IPV4 or hlen != 6 or plen != 4:
            self.skips.skip("unsupported ARP hardware/protocol", str(ref))
            return []
        attrs = {
            "op": op,
            "hwsrc": _mac(hwsrc),
            "hwdst": _mac(hwdst),
            "eth_src": _mac(eth_src) if eth_src else None,
            "eth_dst": _mac(eth_dst) if eth_dst else None,
        }
        return [Event(ts, self.source, ARP, _ntoa(psrc), _ntoa(pdst), proto="arp", attrs=attrs, ref=ref)]


def _quoted(data: bytes, off: int, end: int, v4: bool, attrs: dict[str, Any]) -> None:
    """Add the quoted datagram's protocol, addresses and ports (as far as quoted) to `attrs`.

    A destination-unreachable message quotes the header of the datagram that failed: for a scan
    it names the probed port (code 3) or protocol (code 2). A short or garbled quote adds less or
    nothing; the outer message is still an event.
    """
    if v4:
        if end < off + 20 or data[off] >> 4 != 4:
            return
        ihl = (data[off] & 0x0F) * 4
        if ihl < 20:
            return
        inner_proto = data[off + 9]
        inner_src, inner_dst = _ntoa(data[off + 12 : off + 16]), _ntoa(data[off + 16 : off + 20])
        l4 = off + ihl
    else:
        if end < off + 40 or data[off] >> 4 != 6:
            return
        inner_proto = data[off + 6]
        inner_src, inner_dst = _ntop6(data[off + 8 : off + 24]), _ntop6(data[off + 24 : off + 40])
        l4 = off + 40
    attrs["inner_proto"] = inner_proto
    attrs["inner_src"] = inner_src
    attrs["inner_dst"] = inner_dst
    if inner_proto in (6, 17, SCTP) and end >= l4 + 4:
        attrs["inner_sport"], attrs["inner_dport"] = _ports(data, l4)


def is_pcap(head: bytes) -> bool:
    """True when `head` starts like a classic pcap or a pcapng file."""
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


def read_packets(path: str | Path, source: str | None = None,
                 skips: SkipCounter | None = None, now: Callable[[], datetime] = system_now) -> Iterator[Event]:
    """Yield Events from a pcap or pcapng file; unreadable records are counted in `skips`."""
    path = Path(path)
    name = source or f"pcap:{path.name}"
    skips = skips or SkipCounter(log, name)
    decoder = PacketDecoder(name, skips, latest_time(now().timestamp()))
    fh = open_source(path)
    with fh:
        magic = fh.read(4)
        fh.seek(0)
        if magic == PCAPNG_MAGIC:
            yield from _read_pcapng(fh, path, decoder, skips)
        elif magic in PCAP_MAGICS:
            yield from _read_pcap(fh, path, decoder, skips)
        else:
            raise SourceError(f"{path} is not a pcap or pcapng file")


def _read_pcap(fh: BinaryIO, path: Path, decoder: PacketDecoder, skips: SkipCounter) -> Iterator[Event]:
    # scapy's RawPcapReader builds a metadata tuple and makes two reads per record; walking
    # an mmap with one precompiled struct is about three times faster on large captures.
    try:
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (ValueError, OSError):
        yield from _read_pcap_scapy(fh, path, decoder, skips)
        return
    with buf:
        if len(buf) < 24:
            raise SourceError(f"{path}: truncated pcap header")
        magic = buf[:4]
        endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        _, _major, _minor, _zone, _sig, snaplen, linktype = struct.unpack_from(endian + "4sHHiIII", buf, 0)
        linktype &= 0xFFFF
        scale = 1e-9 if nano else 1e-6
        record = struct.Struct(endian + "IIII").unpack_from
        decode = decoder.decode
        size = len(buf)
        off, n = 24, 0
        limit = max(snaplen, 262144)
        name, source = path.name, decoder.source
        fast = linktype == LINK_ETHERNET
        fast_headers = _ETH_IPV4_L4
        earliest, latest = EARLIEST_TIME, decoder.latest
        addr: dict[bytes, str] = {}
        # Pages already read stay in this process's RSS while the map lives; releasing them as we
        # go keeps memory flat however large the capture (they remain in the page cache).
        dontneed = getattr(mmap, "MADV_DONTNEED", None)
        released = 0
        while off + 16 <= size:
            if off - released >= RELEASE_EVERY and dontneed is not None:
                upto = off - off % mmap.PAGESIZE
                buf.madvise(dontneed, released, upto - released)
                released = upto
            sec, frac, caplen, _wire = record(buf, off)
            off += 16
            n += 1
            if caplen > limit or off + caplen > size:
                skips.skip("truncated capture", f"{path} at record {n}: caplen {caplen}")
                return
            ts = sec + frac * scale
            if not earliest <= ts <= latest:
                decoder.time_ok(ts, f"{name}#{n}")
                off += caplen
                continue
            # The fast path: Ethernet, IPv4 without options or fragmentation, TCP or UDP that no
            # protocol detector needs dissected; read in place, without slicing the frame.
            if fast and caplen >= 48:
                et, vihl, frag, proto, s, d, sp, dp, _doff, fl = fast_headers(buf, off)
                if et == ETH_IPV4 and vihl == 0x45 and not frag & 0x1FFF and (
                        (proto == 6 and sp != FTP_PORT and dp != FTP_PORT)
                        or (proto == 17 and sp not in SLOW_UDP_PORTS and dp not in SLOW_UDP_PORTS)):
                    src = addr.get(s)
                    if src is None:
                        if len(addr) > 65536:
                            addr.clear()
                        src = addr[s] = _ntoa(s)
                    dst = addr.get(d)
                    if dst is None:
                        dst = addr[d] = _ntoa(d)
                    if proto == 6:
                        yield Event(ts, source, NETWORK, src, dst, sp, dp, "tcp", fl, ref=f"{name}#{n}")
                    else:
                        yield Event(ts, source, NETWORK, src, dst, sp, dp, "udp", ref=f"{name}#{n}")
                    off += caplen
                    continue
            yield from decode(buf[off : off + caplen], linktype, ts, f"{name}#{n}")
            off += caplen
        if off != size:
            skips.skip("truncated capture", f"{path}: {size - off} trailing bytes")


def _read_pcap_scapy(fh: BinaryIO, path: Path, decoder: PacketDecoder, skips: SkipCounter) -> Iterator[Event]:
    try:
        # The reader's metaclass opens a path or an open binary file; its __init__ comment says str only.
        reader = RawPcapReader(fh)  # type: ignore[arg-type]
    except Scapy_Exception as exc:
        raise SourceError(f"{path}: bad pcap header: {exc}") from exc
    linktype = reader.linktype
    scale = 1e-9 if getattr(reader, "nano", False) else 1e-6
    n = 0
    try:
        for data, meta in reader:
            n += 1
            ts, ref = meta[0] + meta[1] * scale, f"{path.name}#{n}"
            if decoder.time_ok(ts, ref):
                yield from decoder.decode(data, linktype, ts, ref)
    except (Scapy_Exception, struct.error, EOFError) as exc:
        skips.skip("truncated capture", f"{path} after record {n}: {exc}")


class _PcapNgBlocks(RawPcapNgReader):
    """scapy's pcapng reader, remembering where the block it reads began: scapy ends the iteration
    quietly at a corrupt block, and the bytes from there on are what was lost."""

    block_start = 0

    def _read_block(self, size: int = MTU) -> tuple[bytes, RawPcapNgReader.PacketMetadata] | None:
        self.block_start = self.f.tell()
        return super()._read_block(size)


def _read_pcapng(fh: BinaryIO, path: Path, decoder: PacketDecoder, skips: SkipCounter) -> Iterator[Event]:
    try:
        # As above: scapy accepts an open binary file here; its annotation says str only.
        reader = _PcapNgBlocks(fh)  # type: ignore[arg-type]
    except (Scapy_Exception, struct.error, EOFError) as exc:
        raise SourceError(f"{path}: bad pcapng header: {exc}") from exc
    # scapy types iteration with the pcap PacketMetadata it inherits; a pcapng reader yields PacketMetadataNg.
    records: Iterator[tuple[bytes, RawPcapNgReader.PacketMetadata]] = reader  # type: ignore[assignment]
    decode, time_ok = decoder.decode, decoder.time_ok
    n = 0
    try:
        for data, meta in records:
            n += 1
            ref = f"{path.name}#{n}"
            if meta.tshigh is None or meta.tslow is None:
                skips.skip("pcapng packet without a timestamp", ref)  # a Simple Packet Block
                continue
            tsres = meta.tsresol or 1_000_000
            ts = ((meta.tshigh << 32) + meta.tslow) / tsres
            if time_ok(ts, ref):
                yield from decode(data, meta.linktype, ts, ref)
    except (Scapy_Exception, struct.error, EOFError, ValueError, OverflowError) as exc:
        log.debug("%s: pcapng reader stopped after record %d: %s", path, n, exc)
    size = os.fstat(fh.fileno()).st_size
    if reader.block_start < size:
        skips.skip(f"corrupt pcapng block: {size - reader.block_start} bytes unread",
                   f"{path} at offset {reader.block_start}, after record {n}")
