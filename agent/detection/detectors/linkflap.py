"""Link flapping: an interface going down and up again and again (linkDown/linkUp traps)."""

from __future__ import annotations

from watchstander.connectors.events import LOG, Event

from ...config.detectors import LinkFlapConfig
from .base import Detector, Distinct, Emit, WindowTable


class LinkFlapDetector(Detector):
    """Repeated linkDown/linkUp of one interface: a failing cable or port, or someone plugging in hardware."""

    id = "linkflap"
    kinds = (LOG,)
    # A port that goes down and up while nobody works on it is also what inserting a tap looks like.
    techniques = ("T1200",)
    title = "Link flapping"
    confidence = 0.4
    playbook = None
    live_only = True

    def __init__(self, config: LinkFlapConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.states: WindowTable[Distinct] = WindowTable(config.window_s, Distinct)

    def feed(self, ev: Event) -> None:
        """Count link state changes per device and interface."""
        attrs = ev.attrs
        if not attrs or attrs.get("snmp_trap") not in ("linkDown", "linkUp"):
            return
        device = str(attrs.get("device") or attrs.get("agent") or ev.src or "?")
        index = attrs.get("if_index")
        interface = str(attrs.get("if_descr") or (f"ifIndex {index}" if index is not None else "?"))
        st = self.states.get((device, index if index is not None else interface), ev.time)
        st.add(attrs["snmp_trap"], 2)
        if st.finding is None and st.n >= self.config.transitions:
            entities = {"device": device, "interface": interface}
            if index is not None:
                entities["if_index"] = str(index)
            st.open(self, f"Link flapping on {device} {interface}", "low", entities, ev,
                    evidence="linkDown/linkUp traps")
        f = st.finding
        if f is not None:
            f.count = st.n
            f.last_seen = ev.time
            f.add_evidence(ev.ref)
            f.counts["transitions"] = st.n
            f.attributes["last_state"] = "down" if attrs["snmp_trap"] == "linkDown" else "up"
            if st.n >= 3 * self.config.transitions:
                f.severity = "medium"
