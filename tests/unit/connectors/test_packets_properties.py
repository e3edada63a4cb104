"""Property tests for pcap/pcapng reading and frame decoding: bad bytes are skipped, never raised."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchstander.connectors.errors import SourceError
from watchstander.connectors.events import ARP, AUTH, DNS, KINDS, NETWORK, Event
from watchstander.connectors.packets import (
    LINK_ETHERNET,
    LINK_IPV4,
    LINK_IPV6,
    LINK_LOOP,
    LINK_NULL,
    LINK_RAW,
    LINK_RAW_OLD,
    LINK_SLL,
    LINK_SLL2,
    PacketDecoder,
    read_packets,
)

from .conftest import new_skips

SETTINGS = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FILES = settings(max_examples=80, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

LINKTYPES = [LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_RAW_OLD, LINK_LOOP, LINK_SLL, LINK_SLL2, LINK_IPV4, LINK_IPV6]
# The bytes before the network header for each link type, with the ethertype (where carried) at the end.
ETH = {4: b"\x08\x00", 6: b"\x86\xdd", 0: b"\x08\x06"}


def link_header(linktype: int, version: int) -> bytes:
    """A minimal link-layer header carrying an IPv4 (4), IPv6 (6) or ARP (0) packet."""
    if linktype == LINK_ETHERNET:
        return b"\x02" * 6 + b"\x04" * 6 + ETH[version]
    if linktype in (LINK_NULL, LINK_LOOP):
        return struct.pack("<I", 2 if version == 4 else 24)
    if linktype == LINK_SLL:
        return b"\x00\x00\x00\x01\x00\x06" + b"\x02" * 6 + b"\x00\x00" + ETH[version]
    if linktype == LINK_SLL2:
        return ETH[version] + b"\x00\x00" + b"\x00\x00\x00\x01\x00\x01\x00\x06" + b"\x02" * 6 + b"\x00\x00"
    return b""


def ipv4(proto: int, payload: bytes, frag: int = 0, total: int | None = None) -> bytes:
    """An IPv4 header from 192.0.2.1 to 198.51.100.2 in front of `payload`."""
    length = 20 + len(payload) if total is None else total
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, length & 0xFFFF, 1, frag, 64, proto, 0,
                       bytes([192, 0, 2, 1]), bytes([198, 51, 100, 2])) + payload


def ipv6(proto: int, payload: bytes) -> bytes:
    """An IPv6 header from 2001:db8::1 to 2001:db8::2 in front of `payload`."""
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), proto, 64,
                       ipaddress.IPv6Address("2001:db8::1").packed, ipaddress.IPv6Address("2001:db8::2").packed) + payload


def check_event(ev: Event) -> None:
    """The fields every decoded Event must have, whatever the input was."""
    assert ev.kind in KINDS
    assert isinstance(ev.time, float)
    for port in (ev.sport, ev.dport):
        assert port is None or (isinstance(port, int) and 0 <= port <= 65535)
    for addr in (ev.src, ev.dst):
        assert addr is None or ipaddress.ip_address(addr)
    assert isinstance(ev.flags, int) and 0 <= ev.flags <= 255
    if ev.kind == DNS:
        assert ev.attrs is not None and isinstance(ev.attrs["qname"], str)


NETWORK_PAYLOAD = st.one_of(
    st.binary(max_size=120),
    st.tuples(st.sampled_from([1, 6, 17, 58, 47]), st.binary(max_size=80)).map(lambda t: ipv4(*t)),
    st.tuples(st.sampled_from([0, 6, 17, 43, 44, 58, 60]), st.binary(max_size=80)).map(lambda t: ipv6(*t)),
    st.tuples(st.sampled_from([53, 5353, 21, 22]), st.binary(max_size=80)).map(
        lambda t: ipv4(17, struct.pack("!HHHH", 40000, t[0], 8 + len(t[1]), 0) + t[1])),
    st.binary(max_size=80).map(lambda b: ipv4(6, struct.pack("!HHIIBBHHH", 21, 40000, 0, 0, 0x50, 0x18, 0, 0, 0) + b)),
)


@SETTINGS
@given(st.sampled_from(LINKTYPES + [0xFFFF, 2, 147]), st.sampled_from([4, 6, 0]), NETWORK_PAYLOAD,
       st.integers(0, 120), st.booleans())
def test_decode_never_raises(linktype: int, version: int, body: bytes, cut: int, cut_it: bool) -> None:
    frame = link_header(linktype, version) + body
    if cut_it:
        frame = frame[:cut]
    skips = new_skips()
    for ev in PacketDecoder("t", skips).decode(frame, linktype, 1.5, "ref"):
        check_event(ev)
        assert ev.time == 1.5 and ev.ref == "ref"


@SETTINGS
@given(st.binary(max_size=200), st.integers(-1, 300))
def test_decode_arbitrary_bytes(data: bytes, linktype: int) -> None:
    skips = new_skips()
    for ev in PacketDecoder("t", skips).decode(data, linktype, 0.0):
        check_event(ev)


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_each_link_type_decodes_udp(linktype: int) -> None:
    version = 6 if linktype == LINK_IPV6 else 4
    udp = struct.pack("!HHHH", 40000, 9999, 12, 0) + b"ping"
    frame = link_header(linktype, version) + (ipv6(17, udp) if version == 6 else ipv4(17, udp))
    skips = new_skips()
    (ev,) = PacketDecoder("t", skips).decode(frame, linktype, 2.0)
    assert (ev.kind, ev.proto, ev.sport, ev.dport) == (NETWORK, "udp", 40000, 9999)
    assert ev.src in ("192.0.2.1", "2001:db8::1")
    assert not skips.counts


def pcap(records: list[tuple[int, bytes]], linktype: int = LINK_ETHERNET, snaplen: int = 65535,
         big_endian: bool = False, nano: bool = False) -> bytes:
    """A classic pcap file; each record is (caplen to write in the header, data)."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for i, (caplen, data) in enumerate(records):
        out += struct.pack(e + "IIII", 1_700_000_000 + i, 500, caplen, len(data)) + data
    return out


def _block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng(frames: list[bytes], linktype: int = LINK_ETHERNET) -> bytes:
    """A pcapng file: section header, one interface, one enhanced packet block per frame."""
    out = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += _block(1, struct.pack("<HHI", linktype, 0, 65535))
    for i, data in enumerate(frames):
        ts = (1_700_000_000 + i) * 1_000_000
        out += _block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data)
    return out


UDP_FRAME = link_header(LINK_ETHERNET, 4) + ipv4(17, struct.pack("!HHHH", 1, 2, 8, 0))


def _read(path: Path) -> tuple[list[Event], dict[str, int]]:
    skips = new_skips()
    events = list(read_packets(path, skips=skips))
    for ev in events:
        check_event(ev)
    return events, dict(skips.counts)


@FILES
@given(st.sampled_from(["pcap", "pcap-be", "pcap-ns", "pcapng"]), st.binary(max_size=300))
def test_arbitrary_bytes_after_a_valid_header(tmp_path: Path, kind: str, junk: bytes) -> None:
    head = pcapng([UDP_FRAME]) if kind == "pcapng" else pcap(
        [(len(UDP_FRAME), UDP_FRAME)], big_endian=kind == "pcap-be", nano=kind == "pcap-ns")
    path = tmp_path / "junk.cap"
    path.write_bytes(head + junk)
    events, _ = _read(path)  # SourceError is not acceptable here: the header is valid
    assert len(events) >= 1


@FILES
@given(st.sampled_from(["pcap", "pcapng"]), st.lists(NETWORK_PAYLOAD, min_size=1, max_size=5), st.data())
def test_truncated_files_keep_whole_records(tmp_path: Path, kind: str, bodies: list[bytes], data: st.DataObject) -> None:
    frames = [link_header(LINK_ETHERNET, 4) + b for b in bodies]
    whole = pcapng(frames) if kind == "pcapng" else pcap([(len(f), f) for f in frames])
    cut = data.draw(st.integers(1, len(whole)))
    path = tmp_path / "cut.cap"
    path.write_bytes(whole[:cut])
    try:
        _read(path)
    except SourceError:
        assert cut < (28 if kind == "pcapng" else 24)  # only a header too short to know anything


@FILES
@given(st.integers(262_145, 0xFFFFFFFF), st.integers(0, 65535))
def test_huge_caplen_is_a_counted_skip(tmp_path: Path, caplen: int, snaplen: int) -> None:
    path = tmp_path / "huge.pcap"
    path.write_bytes(pcap([(len(UDP_FRAME), UDP_FRAME), (caplen, b"x" * 100)], snaplen=snaplen))
    events, counts = _read(path)
    assert len(events) == 1
    assert counts == {"truncated capture": 1}


@FILES
@given(st.sampled_from(LINKTYPES), st.lists(NETWORK_PAYLOAD, max_size=4), st.sampled_from(["pcap", "pcapng"]))
def test_every_link_type_in_files(tmp_path: Path, linktype: int, bodies: list[bytes], kind: str) -> None:
    frames = [link_header(linktype, 4) + b for b in bodies]
    path = tmp_path / "lt.cap"
    path.write_bytes(pcapng(frames, linktype) if kind == "pcapng" else pcap([(len(f), f) for f in frames], linktype))
    events, counts = _read(path)
    assert "truncated capture" not in counts
    assert all(ev.time >= 1_700_000_000 for ev in events)


def test_known_frames_from_a_file(tmp_path: Path) -> None:
    arp = link_header(LINK_ETHERNET, 0) + struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, b"\x02" * 6, bytes([192, 0, 2, 1]), b"\x00" * 6, bytes([192, 0, 2, 9]))
    ftp = link_header(LINK_ETHERNET, 4) + ipv4(6, struct.pack("!HHIIBBHHH", 21, 40000, 0, 0, 0x50, 0x18, 0, 0, 0)
                                              + b"530 Login incorrect.\r\n")
    path = tmp_path / "known.pcap"
    path.write_bytes(pcap([(len(arp), arp), (len(ftp), ftp)], nano=True))
    events, counts = _read(path)
    assert [ev.kind for ev in events] == [ARP, NETWORK, AUTH]
    assert events[0].src == "192.0.2.1" and events[0].attrs and events[0].attrs["op"] == 2
    assert events[2].outcome == "failure" and events[2].src == "198.51.100.2"
    assert events[0].time == pytest.approx(1_700_000_000 + 500e-9)
    assert not counts


def test_ftp_reply_needs_a_valid_tcp_data_offset() -> None:
    # Found by these tests; fixed in packets.py by its owner (4963873).
    # Data offset 1 (4 bytes) makes the sequence number "530 " look like an FTP reply.
    tcp = struct.pack("!HH4sIBBHHH", 21, 40000, b"530 ", 0, 0x10, 0x18, 0, 0, 0)
    events = PacketDecoder("t", new_skips()).decode(ipv4(6, tcp), LINK_RAW, 0.0)
    assert [ev.kind for ev in events] == [NETWORK]
