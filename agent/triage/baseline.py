"""The baseline analyst: a deterministic verdict from evidence, counts, asset criticality and recency.

It is the always-available floor under AI triage: it needs no network, and it always answers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime

from ..assets import AssetIndex
from ..models import (
    SEVERITIES,
    DetectorProfile,
    Disposition,
    Incident,
    Provenance,
    RecommendedAction,
    Severity,
    TriageVerdict,
    iso,
    severity_rank,
)

VERSION = "baseline-1"

# What a finding from a detector no profile describes is worth on its own.
UNKNOWN_DETECTOR_CONFIDENCE = 0.6
CRITICALITY_BUMP = {"low": 0, "medium": 0, "high": 1, "critical": 1}
STALE_AFTER_S = 30 * 86400


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_ipv4(text: str) -> bool:
    return _is_ip(text) and ":" not in text


def _bump(severity: Severity, steps: int) -> Severity:
    return SEVERITIES[max(0, min(len(SEVERITIES) - 1, severity_rank(severity) + steps))]


class BaselineAnalyst:
    """Scores incidents without any model, from what each detector declares about itself."""

    def __init__(self, assets: AssetIndex, now: datetime, profiles: Mapping[str, DetectorProfile]) -> None:
        self.assets = assets
        self.now = now
        self.profiles = profiles

    def triage(self, inc: Incident) -> TriageVerdict:
        """Produce a verdict for one incident."""
        findings = list(inc.findings.values())
        counts = inc.counts()
        entities = inc.entities()
        reasons: list[str] = []
        severity = inc.severity

        victims = [v for role in ("victim",) for vs in entities.get(role, []) for v in vs.split(",")]
        attackers = entities.get("attacker", [])
        touched = [a for v in victims if (a := self.assets.lookup(v)) is not None]
        if touched:
            worst = max(touched, key=lambda a: ["low", "medium", "high", "critical"].index(a.criticality))
            steps = CRITICALITY_BUMP[worst.criticality]
            if steps:
                severity = _bump(severity, steps)
            reasons.append(f"target {worst.name} is a {worst.criticality}-criticality asset"
                           + (" (protected)" if worst.protected else ""))
        insider = [a for a in attackers if self.assets.lookup(a) is not None]
        if insider:
            reasons.append(f"source {insider[0]} is inside the site's own networks")

        confidence = max(self._confidence(f.detector) for f in findings)
        detectors = inc.detectors
        if len(detectors) > 1:
            confidence += 0.05 * (len(detectors) - 1)
            reasons.append(f"corroborated by {len(detectors)} detectors ({', '.join(detectors)})")
        if counts.get("events", 0) >= 1000:
            confidence += 0.05
        if any(f.attributes.get("success_after_failures") for f in findings):
            severity = "critical"
            confidence += 0.1
            reasons.append("a login succeeded after the failures: the account may be compromised")
        confidence = round(min(confidence, 0.99), 2)

        age = self.now.timestamp() - inc.last_seen
        if age > STALE_AFTER_S:
            severity = _bump(severity, -1)
            reasons.append(f"activity is historical (last seen {int(age // 86400)} days ago)")

        disposition: Disposition
        if confidence >= 0.85:
            disposition = "true_positive"
        elif confidence >= 0.7:
            disposition = "likely_true_positive"
        else:
            disposition = "needs_review"

        evidence = [ref for f in findings for ref in f.evidence[:3]]
        summary = f"{inc.title}: {counts.get('events', 0)} events between {iso(inc.first_seen)} and {iso(inc.last_seen)}."
        rationale = "; ".join(
            [f"{f.detector}: {f.title} ({f.count} events, {', '.join(f'{k}={v}' for k, v in sorted(f.counts.items()))})"
             for f in findings[:10]] + reasons)
        return TriageVerdict(
            severity=severity,
            confidence=confidence,
            disposition=disposition,
            techniques=tuple(inc.techniques),
            summary=summary[:1000],
            rationale=rationale[:4000],
            evidence_refs=tuple(evidence[:20]),
            recommended_actions=self._actions(inc),
            provenance=Provenance(analyst="baseline", analyst_version=VERSION),
        )

    def _confidence(self, detector: str) -> float:
        profile = self.profiles.get(detector)
        return profile.confidence if profile is not None else UNKNOWN_DETECTOR_CONFIDENCE

    def _actions(self, inc: Incident) -> tuple[RecommendedAction, ...]:
        out: list[RecommendedAction] = []
        seen: set[str] = set()
        attackers = inc.entities().get("attacker", [])
        for det in inc.detectors:
            profile = self.profiles.get(det)
            playbook = profile.playbook if profile is not None else None
            if playbook is None or playbook in seen:
                continue
            seen.add(playbook)
            # Device parameters (which firewall, which sensor) are left for the policy guard to
            # fill from the inventory; the analyst only names what the evidence supports.
            params: dict[str, str | int | bool | list[str]] = {}
            if playbook == "block-address-nftables":
                if not attackers or not _is_ipv4(attackers[0]):
                    continue
                params = {"address": attackers[0]}
                why = f"stop further {det} activity from {attackers[0]}"
            elif playbook == "capture-incident-traffic":
                # The attacker's addresses only: victims are often the site's protected servers.
                addrs = sorted({a for vs in inc.entities().get("attacker", []) for a in vs.split(",") if _is_ip(a)})[:16]
                if not addrs:
                    continue
                params = {"addresses": addrs}
                why = f"preserve evidence of {det} activity involving {', '.join(addrs[:4])}"
            else:
                params = {"incident": inc.fingerprint[:16],
                          "severity": "critical" if severity_rank(inc.severity) >= 3 else "warning"}
                why = "tell the on-call team; no safe automatic containment for this activity"
            out.append(RecommendedAction(playbook=playbook, parameters=params, justification=why))
        return tuple(out)
