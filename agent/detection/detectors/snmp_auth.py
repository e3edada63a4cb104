"""SNMP community guessing: bursts of authenticationFailure traps from one agent, or of datagrams
with unknown communities at our own trap receiver from one sender."""

from __future__ import annotations

from watchstander.connectors.events import LOG, Event

from ...config.detectors import SnmpAuthConfig
from .base import Detector, Distinct, Emit, WindowTable


class SnmpAuthDetector(Detector):
    """Someone trying SNMP communities: on a device (its authenticationFailure traps) or on our receiver."""

    id = "snmp_auth"
    kinds = (LOG,)
    techniques = ("T1110.001",)
    title = "SNMP community guessing"
    confidence = 0.6
    playbook = None
    live_only = True

    def __init__(self, config: SnmpAuthConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.states: WindowTable[Distinct] = WindowTable(config.window_s, Distinct)

    def feed(self, ev: Event) -> None:
        """Count authenticationFailure and badCommunity notifications."""
        attrs = ev.attrs
        if not attrs:
            return
        trap = attrs.get("snmp_trap")
        if trap == "authenticationFailure":
            victim = str(attrs.get("device") or attrs.get("agent") or ev.src or "?")
            st = self.states.get(("agent", victim), ev.time)
            st.add(ev.ref, 1)
            if st.finding is None and st.n >= self.config.failures:
                st.open(self, f"SNMP authentication failures on {victim}: someone is guessing communities", "medium",
                        {"victim": victim}, ev, evidence="authenticationFailure traps")
        elif trap == "badCommunity":
            sender = str(ev.src or attrs.get("agent") or "?")
            receiver = str(attrs.get("receiver") or "?")
            st = self.states.get(("sender", sender), ev.time)
            st.add(ev.ref, 1)
            if st.finding is None and st.n >= self.config.failures:
                st.open(self, f"SNMP community guessing from {sender} against the trap receiver", "medium",
                        {"attacker": sender, "victim": receiver}, ev, evidence="unknown communities")
        else:
            return
        if st.finding is not None:
            f = st.finding
            f.count = st.n
            f.last_seen = ev.time
            f.counts["failures"] = st.n
            f.add_evidence(ev.ref)
