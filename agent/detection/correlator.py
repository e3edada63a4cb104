"""Correlation: findings about the same entity close in time become one incident.

The grouping entity is the attacker where one is known (an address, or a MAC for ARP), else the
victim (a flood from spoofed sources). An incident's fingerprint is fixed when it is opened, from
the entity and the first finding's start, so the same activity replayed again updates the same
incident, and later activity within the window joins it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from ..models import Finding, Incident, severity_rank

ENTITY_ROLES = ("attacker", "attacker_mac", "victim")
UNKNOWN = {"?", "unknown client", ""}

# entity -> (fingerprint, first_seen, last_seen) of an incident already in the store, or None
StoredLookup = Callable[[str, float], tuple[str, float, float] | None]


def primary_entity(f: Finding) -> str:
    """The role:value a finding is grouped by."""
    for role in ENTITY_ROLES:
        value = f.entities.get(role)
        if value and value not in UNKNOWN:
            return f"{role.removesuffix('_mac')}:{value}"
    return f"detector:{f.detector}"


def fingerprint(entity: str, first_seen: float) -> str:
    """Stable incident identity."""
    return hashlib.sha256(f"{entity}|{first_seen:.0f}".encode()).hexdigest()[:32]


class Correlator:
    """Groups findings into incidents; consults the store so that runs continue earlier incidents."""

    def __init__(self, window_s: float, stored: StoredLookup | None = None) -> None:
        self.window = window_s
        self.stored = stored
        self.open: dict[str, list[Incident]] = {}

    def add(self, f: Finding) -> Incident:
        """Place one finding in its incident (opening one if needed) and return the incident."""
        entity = primary_entity(f)
        for current in self.open.get(entity, []):
            if f.first_seen <= current.last_seen + self.window and f.last_seen >= current.first_seen - self.window:
                self._join(current, f)
                return current
        inc: Incident | None = None
        if self.stored is not None:
            hit = self.stored(entity, f.first_seen - self.window)
            if hit is not None and f.first_seen <= hit[2] + self.window and f.last_seen >= hit[1] - self.window:
                inc = Incident(hit[0], entity, f.title, f.severity, hit[1], hit[2])
        if inc is None:
            inc = Incident(fingerprint(entity, f.first_seen), entity, f.title, f.severity, f.first_seen, f.last_seen)
        self.open.setdefault(entity, []).append(inc)
        self._join(inc, f)
        return inc

    def add_all(self, items: Iterable[Finding]) -> list[Incident]:
        """Correlate many findings (in time order) and return the incidents they touched."""
        touched: dict[str, Incident] = {}
        for f in sorted(items, key=lambda x: x.first_seen):
            inc = self.add(f)
            touched[inc.fingerprint] = inc
        return list(touched.values())

    @staticmethod
    def _join(inc: Incident, f: Finding) -> None:
        inc.findings[f.key] = f
        inc.first_seen = min(inc.first_seen, f.first_seen)
        inc.last_seen = max(inc.last_seen, f.last_seen)
        refresh_summary(inc)


def refresh_summary(inc: Incident) -> None:
    """Recompute an incident's severity and title from its findings."""
    if not inc.findings:
        return
    top = max(inc.findings.values(), key=lambda x: (severity_rank(x.severity), x.count))
    inc.severity = max((f.severity for f in inc.findings.values()), key=severity_rank)
    detectors = inc.detectors
    if len(detectors) == 1 and len(inc.findings) == 1:
        inc.title = top.title
    else:
        who = inc.entity.split(":", 1)[1]
        inc.title = f"{top.title} (+{len(inc.findings) - 1} related: {', '.join(detectors)}) [{who}]"
