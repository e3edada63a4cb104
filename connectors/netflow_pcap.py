"""Captured flow export: a pcap or pcapng of the UDP datagrams exporters sent, replayed through FlowDecoder.

The capture is walked with struct over a memory map (classic pcap and pcapng's enhanced and
simple packet blocks); each frame's UDP payload is decoded as an export datagram from the frame's
source address, received at the frame's capture time. Frames that are not export datagrams (ARP,
other UDP) are counted as ignored; truncated frames and blocks are counted as skipped.
"""

from __future__ import annotations

import logging
import mmap
import socket
import struct
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from .errors import SourceError, open_source
from .events import EARLIEST_TIME, Event, system_now
from .netflow import FlowDecoder, looks_like_export
from .skips import SkipCounter

log = logging.getLogger(__name__)

NETFLOW = "netflow"  # the format name: a capture of NetFlow/IPFIX export datagrams

PCAP_LE = {b"\xd4\xc3\xb2\xa1": 1e-6, b"\x4d\x3c\xb2\xa1": 1e-9}
PCAP_BE = {b"\xa1\xb2\xc3\xd4": 1e-6, b"\xa1\xb2\x3c\x4d": 1e-9}
PCAPNG_SHB, PCAPNG_IDB, PCAPNG_EPB, PCAPNG_SPB = 0x0A0D0D0A, 1, 6, 3
LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_RAW_OLD, LINK_LOOP = 0, 1, 101, 12, 108
LINK_SLL, LINK_SLL2, LINK_IPV4, LINK_IPV6 = 113, 276, 228, 229
SNIFF_FRAMES = 16  # frames looked at to decide a capture holds flow export
MAX_FRAME = 262144
EXPORT_VERSIONS = frozenset({b"\x00\x05", b"\x00\x09", b"\x00\x0a"})

Frame = tuple[float, int, bytes]  # capture time, link type, frame bytes


class TruncatedCapture(Exception):
    """The capture ends (or turns corrupt) in the middle of a record."""


def iter_frames(buf: bytes | mmap.mmap) -> Iterator[Frame]:
    """Frames of a pcap or pcapng held in `buf`; raises TruncatedCapture where the records stop making sense."""
    magic = bytes(buf[:4])
    if magic in PCAP_LE or magic in PCAP_BE:
        yield from _pcap_frames(buf, magic)
    elif len(buf) >= 12 and struct.unpack_from("<I", buf, 0)[0] == PCAPNG_SHB:
        yield from _pcapng_frames(buf)
    else:
        raise SourceError("not a pcap or pcapng capture")


def _pcap_frames(buf: bytes | mmap.mmap, magic: bytes) -> Iterator[Frame]:
    endian = "<" if magic in PCAP_LE else ">"
    scale = PCAP_LE.get(magic) or PCAP_BE[magic]
    if len(buf) < 24:
        raise TruncatedCapture("pcap header")
    linktype = struct.unpack_from(endian + "I", buf, 20)[0] & 0xFFFF
    record = struct.Struct(endian + "IIII").unpack_from
    off, size = 24, len(buf)
    while off < size:
        if off + 16 > size:
            raise TruncatedCapture(f"record header at {off}")
        sec, frac, caplen, _ = record(buf, off)
        off += 16
        if caplen > MAX_FRAME or off + caplen > size:
            raise TruncatedCapture(f"record at {off - 16}: caplen {caplen}")
        yield sec + frac * scale, linktype, bytes(buf[off : off + caplen])
        off += caplen


def _pcapng_frames(buf: bytes | mmap.mmap) -> Iterator[Frame]:
    off, size = 0, len(buf)
    endian = "<"
    links: list[tuple[int, float]] = []  # per interface: link type, seconds per timestamp unit
    while off < size:
        if off + 12 > size:
            raise TruncatedCapture(f"block header at {off}")
        if struct.unpack_from("<I", buf, off)[0] == PCAPNG_SHB:
            bom = bytes(buf[off + 8 : off + 12])
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        btype, blen = struct.unpack_from(endian + "II", buf, off)
        if blen < 12 or blen % 4 or off + blen > size:
            raise TruncatedCapture(f"block at {off}: length {blen}")
        body, end = off + 8, off + blen - 4
        if btype == PCAPNG_IDB and end - body >= 8:
            link = struct.unpack_from(endian + "H", buf, body)[0]
            links.append((link, _tsresol(buf, body + 8, end, endian)))
        elif btype == PCAPNG_EPB and end - body >= 20:
            iface, high, low, caplen, _ = struct.unpack_from(endian + "IIIII", buf, body)
            if iface < len(links) and body + 20 + caplen <= end:
                link, unit = links[iface]
                yield ((high << 32) + low) * unit, link, bytes(buf[body + 20 : body + 20 + caplen])
        off += blen


def _tsresol(buf: bytes | mmap.mmap, off: int, end: int, endian: str) -> float:
    """The if_tsresol option of an interface block (default microseconds)."""
    while off + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, off)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = buf[off + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        off += 4 + (length + 3) // 4 * 4
    return 1e-6


def udp_payload(frame: bytes, linktype: int) -> tuple[str, bytes] | None:
    """(sender address, UDP payload) of a frame carrying an unfragmented UDP datagram, else None."""
    if linktype == LINK_ETHERNET:
        if len(frame) < 14:
            return None
        ethertype, off = struct.unpack_from("!H", frame, 12)[0], 14
        while ethertype in (0x8100, 0x88A8) and len(frame) >= off + 4:
            ethertype, off = struct.unpack_from("!H", frame, off + 2)[0], off + 4
        if ethertype not in (0x0800, 0x86DD):
            return None
    elif linktype in (LINK_RAW, LINK_RAW_OLD, LINK_IPV4, LINK_IPV6):
        off = 0
    elif linktype in (LINK_NULL, LINK_LOOP):
        off = 4
    elif linktype == LINK_SLL:
        off = 16
    elif linktype == LINK_SLL2:
        off = 20
    else:
        return None
    if len(frame) < off + 1:
        return None
    version = frame[off] >> 4
    if version == 4:
        if len(frame) < off + 20:
            return None
        ihl = (frame[off] & 0x0F) * 4
        total, frag, proto = struct.unpack_from("!2xH2xHxB", frame, off)
        if proto != 17 or frag & 0x3FFF or ihl < 20:  # a fragment carries only part of a datagram
            return None
        src = socket.inet_ntoa(frame[off + 12 : off + 16])
        udp, end = off + ihl, min(len(frame), off + total)
    elif version == 6:
        if len(frame) < off + 40 or frame[off + 6] != 17:
            return None
        src = socket.inet_ntop(socket.AF_INET6, frame[off + 8 : off + 24])
        udp, end = off + 40, min(len(frame), off + 40 + struct.unpack_from("!H", frame, off + 4)[0])
    else:
        return None
    if end < udp + 8:
        return None
    ulen = struct.unpack_from("!H", frame, udp + 4)[0]
    if ulen < 8 or udp + ulen > end:
        return None
    return src, frame[udp + 8 : udp + ulen]


def is_flow_capture(head: bytes) -> bool:
    """True when the first frames of a capture (its first bytes in `head`) are mostly flow export datagrams."""
    seen = export = 0
    try:
        for _, linktype, frame in iter_frames(head):
            seen += 1
            udp = udp_payload(frame, linktype)
            if udp is not None and looks_like_export(udp[1]):
                export += 1
            if seen >= SNIFF_FRAMES:
                break
    except (TruncatedCapture, SourceError, struct.error, IndexError, ValueError):
        pass  # the head ends inside a frame (or turns to garbage): judge on the frames before it
    return export > 0 and export * 4 >= seen * 3


def read_flow_capture(path: str | Path, now: Callable[[], datetime] = system_now,
                      skips: SkipCounter | None = None, source: str | None = None,
                      template_ttl_s: float = 1800.0) -> Iterator[Event]:
    """Yield the flow Events of a capture of export datagrams; what cannot be read is counted in `skips`."""
    path = Path(path)
    skips = skips or SkipCounter(log, f"netflow:{path.name}")
    decoder = FlowDecoder(skips, now, template_ttl_s=template_ttl_s, source=source)
    latest = now().timestamp() + 86_400.0
    fh = open_source(path)
    with fh:
        try:
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError) as exc:
            raise SourceError(f"cannot map {path}: {exc}") from exc
        with buf:
            n = 0
            try:
                for ts, linktype, frame in iter_frames(buf):
                    n += 1
                    udp = udp_payload(frame, linktype)
                    if udp is None or udp[1][:2] not in EXPORT_VERSIONS:
                        skips.ignore("frame not a flow export datagram")
                        continue
                    received = ts if EARLIEST_TIME <= ts <= latest else now().timestamp()
                    yield from decoder.decode(udp[1], udp[0], received)
            except (TruncatedCapture, struct.error, IndexError, ValueError) as exc:
                skips.skip("truncated capture", f"{path} after frame {n}: {exc}")
    decoder.flush_pending()
