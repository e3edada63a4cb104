"""Host sweeps: ICMP echo, timestamp or address-mask requests, or ARP requests, from one source to
many addresses; from packets and from flow records (ICMP type*256+code in dport, as NetFlow has it)."""

from __future__ import annotations

import logging
from collections import Counter

from watchstander.connectors.events import ARP, NETWORK, Event

from ...config.detectors import SweepConfig
from .base import Detector, Distinct, Emit, WindowTable
from .scan_probe import Networks, attack_ids, covering_network

__all__ = ["SweepDetector", "covering_network"]

log = logging.getLogger(__name__)

CAP = 65536
# ICMP requests that only ask "are you there": (protocol, type) -> what the finding calls it.
DISCOVERY_REQUESTS = {("icmp", 8): "ICMP echo", ("icmp6", 128): "ICMPv6 echo", ("icmp", 13): "ICMP timestamp",
                      ("icmp", 17): "ICMP address mask"}


def request_method(ev: Event) -> str | None:
    """The discovery method `ev` is a request of, or None."""
    proto = ev.proto
    if proto != "icmp" and proto != "icmp6":
        return None
    icmp_type = ev.sport
    attrs = ev.attrs
    if attrs is not None and attrs.get("flow") and type(ev.dport) is int and not ev.sport:
        icmp_type = ev.dport >> 8  # NetFlow and IPFIX carry type*256+code in the destination port
    return DISCOVERY_REQUESTS.get((proto, icmp_type)) if type(icmp_type) is int else None


class SweepState(Distinct):
    """Distinct hosts per source and method, and whether an allow-listed scanner made them."""

    __slots__ = ("suppressed",)

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.suppressed = False


class SweepDetector(Detector):
    """Remote system discovery by ping or ARP sweeps: T1018 inside, T1595.001 too from the internet."""

    id = "sweep"
    kinds = (NETWORK, ARP)
    techniques = ("T1018", "T1595.001")
    title = "Host sweep"
    confidence = 0.7
    playbook = "notify-webhook"

    def __init__(self, config: SweepConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.table: WindowTable[SweepState] = WindowTable(config.window_s, SweepState)
        self.scanners = Networks(config.scanners)
        self.suppressed: Counter[str] = Counter()  # allow-listed scanner -> sweeps not reported

    def feed(self, ev: Event) -> None:
        """Count discovery requests per source and method."""
        if ev.kind == ARP:
            attrs = ev.attrs or {}
            if attrs.get("op") != 1 or ev.src == ev.dst or ev.src == "0.0.0.0":
                return
            method = "ARP"
        else:
            found = request_method(ev)
            if found is None:
                return
            method = found
        st = self.table.get((ev.src, method), ev.time)
        st.add(ev.dst, CAP)
        f = st.finding
        if f is None:
            if len(st.items) < self.config.hosts or st.suppressed:
                return
            attacker = ev.src or "?"
            if attacker in self.scanners:
                st.suppressed = True
                self.suppressed[attacker] += 1
                log.info("allow-listed scanner %s: %s sweep not reported", attacker, method)
                return
            network = covering_network(st.items)
            f = st.open(self, self._title(method, network, attacker, len(st.items)), "low",
                    {"attacker": attacker, "victim": network}, ev,
                    techniques=attack_ids(attacker, ("T1018",), ("T1595.001", "T1018")), method=method)
        st.update(ev, "distinct_hosts")
        if st.n % 64 == 0 or len(st.items) < 2 * self.config.hosts:
            network = covering_network(st.items)
            f.entities["victim"] = network
            f.title = self._title(method, network, ev.src or "?", len(st.items))

    @staticmethod
    def _title(method: str, network: str, attacker: str, hosts: int) -> str:
        return f"{method} sweep of {network} from {attacker} ({hosts} hosts)"
