"""SYN floods: a burst of connection attempts against one address and port, from packets or flow
records (a flow of SYNs without ACK counts its packets)."""

from __future__ import annotations

from watchstander.connectors.events import ACK, NETWORK, SYN, Event

from ...config.detectors import SynFloodConfig
from .base import Detector, Distinct, Emit, WindowTable

SOURCE_CAP = 10_000


class SynFloodDetector(Detector):
    """Counts SYNs per destination service in a short window; many sources means spoofed."""

    id = "synflood"
    kinds = (NETWORK,)
    techniques = ("T1499.001", "T1498.001")
    title = "SYN flood"
    confidence = 0.8
    playbook = "notify-webhook"

    def __init__(self, config: SynFloodConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.table: WindowTable[Distinct] = WindowTable(config.window_s, Distinct, max_keys=50_000)

    def feed(self, ev: Event) -> None:
        """Count one SYN against its destination service."""
        if ev.flags & (SYN | ACK) != SYN or ev.proto != "tcp":
            return
        st = self.table.get((ev.dst, ev.dport), ev.time)
        st.add(ev.src, SOURCE_CAP)
        attrs = ev.attrs
        if attrs is not None and attrs.get("flow"):
            # A flow record of a flood stands for all its SYNs (the initiator's flags never had ACK).
            packets = attrs.get("packets")
            if type(packets) is int and packets > 1:
                st.n += min(packets, 1 << 32) - 1
        f = st.finding
        if f is None:
            if st.n < self.config.syns:
                return
            spoofed = len(st.items) >= self.config.spoofed_sources
            entities = {"victim": ev.dst or "?", "victim_port": str(ev.dport)}
            if not spoofed:
                entities["attacker"] = ev.src or "?"
            f = st.open(self, f"SYN flood against {ev.dst}:{ev.dport}", "high", entities, ev)
        st.update(ev, "distinct_sources")
        spoofed = len(st.items) >= self.config.spoofed_sources
        f.attributes["spoofed_sources"] = spoofed
        if spoofed:
            f.entities.pop("attacker", None)
            f.attributes["source_count_capped"] = len(st.items) >= SOURCE_CAP
        rate_window = max(ev.time - f.first_seen, 1e-3)
        f.attributes["syn_rate_per_s"] = round(st.n / rate_window, 1)
