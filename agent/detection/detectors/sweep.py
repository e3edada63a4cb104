"""Host sweeps: ICMP echo requests or ARP requests from one source to many addresses."""

from __future__ import annotations

import ipaddress

from watchstander.connectors.events import ARP, NETWORK, Event

from ...config.detectors import SweepConfig
from .base import Detector, Distinct, Emit, WindowTable

CAP = 65536
ECHO_REQUEST = {"icmp": 8, "icmp6": 128}


def covering_network(addresses: set[str]) -> str:
    """The smallest network that holds every address (as a CIDR string)."""
    nets = [ipaddress.ip_address(a) for a in list(addresses)[:4096]]
    if not nets:
        return "?"
    first = nets[0]
    bits: int = first.max_prefixlen
    base = int(first)
    for a in nets[1:]:
        if a.version != first.version:
            return "mixed"
        diff = base ^ int(a)
        bits = min(bits, first.max_prefixlen - diff.bit_length())
    return str(ipaddress.ip_network((base >> (first.max_prefixlen - bits) << (first.max_prefixlen - bits), bits)))


class SweepDetector(Detector):
    """Remote system discovery by ping or ARP sweeps."""

    id = "sweep"
    kinds = (NETWORK, ARP)
    techniques = ("T1018", "T1595.001")
    title = "Host sweep"
    confidence = 0.7
    playbook = "notify-webhook"

    def __init__(self, config: SweepConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.table: WindowTable[Distinct] = WindowTable(config.window_s, Distinct)

    def feed(self, ev: Event) -> None:
        """Count echo requests and ARP who-has requests per source."""
        if ev.kind == ARP:
            attrs = ev.attrs or {}
            if attrs.get("op") != 1 or ev.src == ev.dst or ev.src == "0.0.0.0":
                return
            method = "ARP"
        elif ev.proto in ECHO_REQUEST and ev.sport == ECHO_REQUEST[ev.proto]:
            method = "ICMP echo"
        else:
            return
        st = self.table.get((ev.src, method), ev.time)
        st.add(ev.dst, CAP)
        if st.finding is None and len(st.items) >= self.config.hosts:
            st.open(self, f"{method} sweep from {ev.src}", "low",
                    {"attacker": ev.src or "?", "victim": covering_network(st.items)}, ev, method=method)
        if st.finding is not None:
            st.update(ev, "distinct_hosts")
            if st.n % 64 == 0 or len(st.items) < 2 * self.config.hosts:
                st.finding.entities["victim"] = covering_network(st.items)
