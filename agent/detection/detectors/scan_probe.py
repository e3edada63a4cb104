"""What counts as a scan probe, from a packet or a flow record, and what names and ids it gets.

A probe is judged by its protocol, TCP flags and ports; a flow record (attrs["flow"]) by the OR of
its flags, its packet count and its size. The same functions serve every scan detector, so a
packet capture and the flows exported from the same traffic are judged alike.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from watchstander.connectors.events import ACK, FIN, PSH, SYN, Event

URG = 0x20
FLAG_MASK = 0x3F  # FIN SYN RST PSH ACK URG; ECE and CWR ride along with any of them

TCP_SYN, TCP_FIN, TCP_NULL, TCP_XMAS = "tcp-syn", "tcp-fin", "tcp-null", "tcp-xmas"
TCP_ACK, TCP_MAIMON, UDP, SCTP_INIT, IP_PROTOCOL = "tcp-ack", "tcp-maimon", "udp", "sctp-init", "ip-protocol"

# Flag combinations no real connection sends as its first packet; SYN probes are told apart by
# SYN without ACK, whatever else rides along.
TCP_PROBE_FLAGS: dict[int, str] = {0: TCP_NULL, FIN: TCP_FIN, FIN | PSH | URG: TCP_XMAS, ACK: TCP_ACK,
                                   FIN | ACK: TCP_MAIMON}
# Bare ACK and FIN+ACK are also what every connection sends: a port counts only while nothing
# else (a handshake, data, the other flag, more than a few packets) shows a real connection on it.
AMBIGUOUS = frozenset({TCP_ACK, TCP_MAIMON})

NAMES = {TCP_SYN: "TCP SYN", TCP_FIN: "TCP FIN", TCP_NULL: "TCP NULL", TCP_XMAS: "TCP Xmas",
         TCP_ACK: "TCP ACK (or window)", TCP_MAIMON: "TCP Maimon", UDP: "UDP", SCTP_INIT: "SCTP INIT",
         IP_PROTOCOL: "IP protocol"}

FLOW_PROBE_PACKETS = 3      # a flow of more packets than this is a conversation, not a probe
ANSWERED_UDP = frozenset({"SF", "SHR"})  # Zeek conn_state of a UDP record whose responder answered
FLOW_BARE_BYTES = 64        # per packet: a TCP probe carries headers only
FLOW_UDP_PROBE_BYTES = 512  # per flow: a UDP probe is one small datagram (nmap's payloads included)
TRACEROUTE_PORTS = range(33434, 33535)  # classic UDP traceroute walks these on one host
SCTP_PROBE_CHUNKS = frozenset({1, 10})  # INIT (nmap -sY) and COOKIE ECHO (nmap -sZ)
EPHEMERAL_FLOOR = 1024
# IP protocols every pair of hosts may use; an IP protocol scan is many of the others.
COMMON_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "icmp6", "sctp", "1", "6", "17", "58", "132"})
PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "icmp6": 58, "sctp": 132}
UNREACHABLE = {"icmp": 3, "icmp6": 1}
PORT_UNREACHABLE = {"icmp": 3, "icmp6": 4}
PROTOCOL_UNREACHABLE = 2  # ICMPv4 code; ICMPv6 has none (an IPv6 host answers with a parameter problem)


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def flow_small(attrs: dict[str, Any], bytes_per_packet: int) -> bool:
    """True when a flow record is a handful of header-only packets (a probe, not a conversation)."""
    packets = _int(attrs.get("packets"))
    return 0 < packets <= FLOW_PROBE_PACKETS and _int(attrs.get("bytes")) <= packets * bytes_per_packet


def probe(ev: Event) -> str | None:
    """The scan technique `ev` is a probe of (towards ev.dst:ev.dport), or None."""
    proto = ev.proto
    if proto == "tcp":
        flags = ev.flags
        if flags & (SYN | ACK) == SYN:
            technique: str | None = TCP_SYN
        else:
            technique = TCP_PROBE_FLAGS.get(flags & FLAG_MASK)
            if technique is None:
                return None
            attrs = ev.attrs
            if attrs is not None and attrs.get("flow") and not flow_small(attrs, FLOW_BARE_BYTES):
                return None
        return technique if _port_ok(ev.dport) else None
    if proto == "udp":
        sport, dport = ev.sport, ev.dport
        if type(sport) is not int or type(dport) is not int or not 0 <= dport <= 0xFFFF:
            return None
        if sport < EPHEMERAL_FLOOR <= dport or sport == dport or dport in TRACEROUTE_PORTS:
            return None  # a service answering a client, peers of one protocol (NTP, IKE), a traceroute
        attrs = ev.attrs
        if attrs is not None and attrs.get("flow"):
            if attrs.get("conn_state") in ANSWERED_UDP:
                return None  # Zeek saw the service answer (both directions are one conn.log record)
            packets = _int(attrs.get("packets"))
            if not 0 < packets <= FLOW_PROBE_PACKETS or _int(attrs.get("bytes")) > FLOW_UDP_PROBE_BYTES:
                return None
        return UDP
    if proto == "sctp":
        attrs = ev.attrs
        if attrs is None or not _port_ok(ev.dport):
            return None
        if attrs.get("flow"):
            return SCTP_INIT if flow_small(attrs, 256) else None
        return SCTP_INIT if attrs.get("chunk") in SCTP_PROBE_CHUNKS else None
    return None


def _port_ok(port: int | None) -> bool:
    return type(port) is int and 0 <= port <= 0xFFFF


def unreachable(ev: Event) -> tuple[str, str, str | None, int | None] | None:
    """From an ICMP destination unreachable quoting a probe: (prober, target, technique, port).

    technique is UDP or SCTP_INIT with the probed port for a port unreachable, IP_PROTOCOL with
    the protocol number for a protocol unreachable, None for other codes.
    """
    attrs, kind = ev.attrs, UNREACHABLE.get(ev.proto or "")
    if attrs is None or kind is None or ev.sport != kind:
        return None
    prober, target = attrs.get("inner_src"), attrs.get("inner_dst")
    if not isinstance(prober, str) or not isinstance(target, str):
        return None
    inner = attrs.get("inner_proto")
    if ev.proto == "icmp" and ev.dport == PROTOCOL_UNREACHABLE and type(inner) is int:
        return prober, target, IP_PROTOCOL, inner
    port = attrs.get("inner_dport")
    if ev.dport == PORT_UNREACHABLE[ev.proto or "icmp"] and _port_ok(port):
        if inner == 17:
            return prober, target, UDP, port
        if inner == 132:
            return prober, target, SCTP_INIT, port
    return prober, target, None, None


def attack_ids(address: str, inside: tuple[str, ...] = ("T1046",),
               outside: tuple[str, ...] = ("T1595.001", "T1046")) -> tuple[str, ...]:
    """ATT&CK ids for a scan from `address`: Discovery inside, Reconnaissance from the internet too."""
    return outside if is_global(address) else inside


@lru_cache(maxsize=4096)
def is_global(address: str) -> bool:
    """True for a publicly routable address (False for private, reserved, or not an address)."""
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


class Networks:
    """Membership of addresses in a fixed list of networks, with a bounded cache of answers."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
        self._cache: dict[str, bool] = {}

    def __contains__(self, address: object) -> bool:
        if not self.nets or not isinstance(address, str):
            return False
        hit = self._cache.get(address)
        if hit is None:
            if len(self._cache) > 65536:
                self._cache.clear()
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                hit = False
            else:
                hit = any(ip.version == n.version and ip in n for n in self.nets)
            self._cache[address] = hit
        return hit


class Cover:
    """The smallest network holding every address added so far, kept incrementally."""

    __slots__ = ("base", "bits", "mixed", "text", "width")

    def __init__(self, addresses: Iterable[str] = ()) -> None:
        self.base = self.bits = self.width = 0
        self.mixed = False
        self.text = ""  # the last rendering, until the network widens
        for a in addresses:
            self.add(a)

    def add(self, address: object) -> None:
        """Widen the network to hold `address` (ignored unless it is an IP address)."""
        if not isinstance(address, str):
            return
        try:
            packed = socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
        except (OSError, ValueError):
            return
        value, width = int.from_bytes(packed, "big"), len(packed) * 8
        if not self.width:
            self.base, self.bits, self.width = value, width, width
            self.text = ""
        elif width != self.width:
            self.mixed, self.text = True, ""
        else:
            bits = min(self.bits, width - (self.base ^ value).bit_length())
            if bits != self.bits:
                self.bits, self.text = bits, ""

    def __str__(self) -> str:
        if not self.text:
            self.text = self._render()
        return self.text

    def _render(self) -> str:
        if not self.width:
            return "?"
        if self.mixed:
            return "mixed"
        shift = self.width - self.bits
        net = (self.base >> shift << shift, self.bits)
        return str(ipaddress.IPv4Network(net) if self.width == 32 else ipaddress.IPv6Network(net))


def covering_network(addresses: Iterable[str]) -> str:
    """The smallest network holding every address, "mixed" across IP versions, "?" without any."""
    return str(Cover(addresses))
