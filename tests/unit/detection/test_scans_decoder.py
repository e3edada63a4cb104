"""The packet decoder's scan evidence: the datagram an ICMP unreachable quotes, SCTP chunk types,
on real recorded frames and on hostile bytes."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
from scapy.layers.l2 import Ether
from scapy.layers.sctp import SCTP, SCTPChunkInit
from scapy.utils import RawPcapReader

from watchstander.connectors.packets import LINK_ETHERNET, PacketDecoder, read_packets
from watchstander.connectors.skips import SkipCounter

SCANS = Path(__file__).resolve().parents[2] / "data" / "captures" / "scans"
T = 1_767_603_600.0


def decoder() -> PacketDecoder:
    return PacketDecoder("test", SkipCounter(logging.getLogger("test"), "test"))


def test_port_unreachable_names_the_probed_port() -> None:
    frame = bytes(Ether() / IP(src="10.0.0.5", dst="10.0.0.9") / ICMP(type=3, code=3)
                  / IPerror(src="10.0.0.9", dst="10.0.0.5", proto=17) / UDPerror(sport=45338, dport=161))
    (ev,) = decoder().decode(frame, LINK_ETHERNET, T, "f#1")
    assert (ev.src, ev.dst, ev.sport, ev.dport, ev.proto) == ("10.0.0.5", "10.0.0.9", 3, 3, "icmp")
    assert ev.attrs == {"ttl": 64, "inner_proto": 17, "inner_src": "10.0.0.9", "inner_dst": "10.0.0.5",
                        "inner_sport": 45338, "inner_dport": 161}


def test_icmpv6_unreachable_and_echo_are_unchanged_otherwise() -> None:
    frame = bytes(Ether() / IPv6(src="fd00::5", dst="fd00::9") / ICMPv6DestUnreach(code=4)
                  / IPv6(src="fd00::9", dst="fd00::5") / UDP(sport=1234, dport=53))
    (ev,) = decoder().decode(frame, LINK_ETHERNET, T, "f#1")
    assert ev.attrs is not None and ev.attrs["inner_dport"] == 53 and ev.attrs["inner_dst"] == "fd00::5"
    (echo,) = decoder().decode(bytes(Ether() / IP() / ICMP(type=8)), LINK_ETHERNET, T, "f#2")
    assert echo.attrs == {"ttl": 64} and (echo.sport, echo.dport) == (8, 0)


def test_sctp_init_and_truncated_sctp() -> None:
    frame = bytes(Ether() / IP(src="10.0.0.9", dst="10.0.0.5") / SCTP(sport=5000, dport=80) / SCTPChunkInit())
    (ev,) = decoder().decode(frame, LINK_ETHERNET, T, "f#1")
    assert (ev.proto, ev.sport, ev.dport, ev.attrs) == ("sctp", 5000, 80, {"chunk": 1})
    d = decoder()
    short = bytes(Ether() / IP(src="10.0.0.9", dst="10.0.0.5", proto=132)) + b"\x13\x88\x00"
    assert d.decode(short, LINK_ETHERNET, T, "f#2") == []
    assert d.skips.counts["truncated SCTP header"] == 1


def test_recorded_scans_read_the_same_on_the_fast_and_the_general_path() -> None:
    for pcap in sorted(SCANS.glob("*.pcap")):
        fast = [e.as_dict() for e in read_packets(pcap)]
        d = PacketDecoder(f"pcap:{pcap.name}", SkipCounter(logging.getLogger("t"), "t"))
        slow = []
        with RawPcapReader(str(pcap)) as reader:
            for n, (data, meta) in enumerate(reader, 1):
                slow += [e.as_dict() for e in d.decode(data, reader.linktype, meta[0] + meta[1] * 1e-6,
                                                         f"{pcap.name}#{n}")]
        assert fast == slow, pcap.name



def _v4(proto: int, payload: bytes, total: int | None) -> bytes:
    ip = bytearray(bytes(IP(src="10.0.0.5", dst="10.0.0.9", proto=proto)))
    length = total if total is not None else 20 + len(payload)
    struct.pack_into("!H", ip, 2, length & 0xFFFF)
    return bytes(Ether()) + bytes(ip) + payload


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(proto=st.sampled_from([1, 58, 132]),
       head=st.sampled_from([b"\x03\x03\0\0\0\0\0\0", b"\x03\x02\0\0\0\0\0\0", b"\x01\x04\0\0\0\0\0\0", b""]),
       payload=st.binary(max_size=80), total=st.one_of(st.none(), st.integers(0, 0xFFFF)))
def test_hostile_unreachables_and_sctp_never_raise(proto: int, head: bytes, payload: bytes, total: int | None) -> None:
    d = decoder()
    for ev in d.decode(_v4(proto, head + payload, total), LINK_ETHERNET, T, "h#1"):
        attrs = ev.attrs or {}
        assert set(attrs) <= {"ttl", "chunk", "inner_proto", "inner_src", "inner_dst", "inner_sport", "inner_dport"}
        for key in ("inner_src", "inner_dst"):
            assert isinstance(attrs.get(key, ""), str)
        for key in ("chunk", "inner_proto", "inner_sport", "inner_dport"):
            value = attrs.get(key, 0)
            assert isinstance(value, int) and 0 <= value <= 0xFFFF
    # what was not decoded was counted, never raised
    assert all(isinstance(n, int) for n in d.skips.counts.values())
