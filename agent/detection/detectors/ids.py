"""IDS alerts (Suricata EVE) passed through as findings, with mapped severity and ATT&CK ids."""

from __future__ import annotations

import re

from watchstander.connectors.events import DETECTION, Event

from ...config.detectors import IdsConfig
from ...models import Severity
from .base import Detector, Distinct, Emit, WindowTable

SEVERITY: dict[int, Severity] = {1: "high", 2: "medium", 3: "low", 4: "info"}

# Signature keywords to ATT&CK techniques; first match wins, the fallback is T1595 (Active Scanning).
TECHNIQUE_RULES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"brute|login|password|auth", re.IGNORECASE), ("T1110",)),
    (re.compile(r"\bSNMP\b", re.IGNORECASE), ("T1602.001",)),
    (re.compile(r"sipvicious|\bscan\b|\bnmap\b|masscan", re.IGNORECASE), ("T1046",)),
    (re.compile(r"exploit|CVE-|overflow|injection|shellcode", re.IGNORECASE), ("T1190",)),
    (re.compile(r"trojan|malware|\bC2\b|command and control|CnC", re.IGNORECASE), ("T1071",)),
    (re.compile(r"\bDNS\b.*(tunnel|exfil)", re.IGNORECASE), ("T1071.004",)),
)


def techniques_for(signature: str, category: str) -> tuple[str, ...]:
    """ATT&CK technique ids for an IDS signature."""
    text = f"{signature} {category}"
    for pattern, techniques in TECHNIQUE_RULES:
        if pattern.search(text):
            return techniques
    return ("T1595",)


class IdsAlertDetector(Detector):
    """One finding per (signature, source, destination) within the window, counting repeats."""

    id = "ids"
    kinds = (DETECTION,)
    techniques = ("T1595",)
    title = "IDS alert"
    confidence = 0.6
    playbook = "block-address-nftables"

    def __init__(self, config: IdsConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.table: WindowTable[Distinct] = WindowTable(config.window_s, Distinct)

    def feed(self, ev: Event) -> None:
        """Pass an alert through."""
        attrs = ev.attrs or {}
        sev = attrs.get("severity")
        if not isinstance(sev, int) or isinstance(sev, bool):
            sev = 3  # the connector bounds it; anything else is treated as Suricata's default
        if sev > self.config.min_severity:
            return
        signature = str(attrs.get("signature") or "unnamed signature")
        st = self.table.get((attrs.get("signature_id") or signature, ev.src, ev.dst), ev.time)
        st.add(ev.dport, 1024)
        if st.finding is None:
            entities = {"attacker": ev.src or "?", "victim": ev.dst or "?"}
            st.open(self, f"IDS: {signature}", SEVERITY.get(sev, "low"), entities, ev,
                    techniques=techniques_for(signature, str(attrs.get("category") or "")),
                    signature=signature, signature_id=attrs.get("signature_id"),
                    category=attrs.get("category"), engine=attrs.get("engine"), ids_severity=sev)
        st.update(ev, "distinct_ports")
