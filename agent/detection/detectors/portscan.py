"""Port scans: many ports on one host (vertical) or one port on many hosts (horizontal)."""

from __future__ import annotations

from watchstander.connectors.events import ACK, NETWORK, SYN, Event

from ...config.detectors import PortScanConfig
from .base import Detector, Distinct, Emit, WindowTable

CAP = 65536


class PortScanDetector(Detector):
    """TCP connection attempts (SYN without ACK) counted per source, by port and by host."""

    id = "portscan"
    kinds = (NETWORK,)
    techniques = ("T1046",)
    title = "Port scan"
    confidence = 0.85
    playbook = "block-address-nftables"

    def __init__(self, config: PortScanConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.vertical: WindowTable[Distinct] = WindowTable(config.window_s, Distinct)
        self.horizontal: WindowTable[Distinct] = WindowTable(config.window_s, Distinct)

    def feed(self, ev: Event) -> None:
        """Count a SYN towards both scan shapes."""
        if ev.flags & (SYN | ACK) != SYN or ev.proto != "tcp":
            return
        v = self.vertical.get((ev.src, ev.dst), ev.time)
        v.add(ev.dport, CAP)
        if v.finding is None and len(v.items) >= self.config.vertical_ports:
            v.open(self, f"Vertical port scan of {ev.dst} from {ev.src}", "medium",
                   {"attacker": ev.src or "?", "victim": ev.dst or "?"}, ev, shape="vertical")
        v.update(ev, "distinct_ports")
        h = self.horizontal.get((ev.src, ev.dport), ev.time)
        h.add(ev.dst, CAP)
        if h.finding is None and len(h.items) >= self.config.horizontal_hosts:
            h.open(self, f"Horizontal scan of TCP port {ev.dport} from {ev.src}", "medium",
                   {"attacker": ev.src or "?", "victim_port": str(ev.dport)}, ev, shape="horizontal")
        h.update(ev, "distinct_hosts")
