"""The contracts between stages: Finding (a detector's conclusion), Incident (findings grouped),
TriageVerdict (what an analyst, baseline or model, says about an incident)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
Disposition = Literal["true_positive", "likely_true_positive", "needs_review", "likely_benign", "benign"]

MAX_EVIDENCE = 20


def severity_rank(sev: str) -> int:
    """0 for info up to 4 for critical."""
    return SEVERITIES.index(sev)


def iso(ts: float | None) -> str | None:
    """An epoch time as an ISO 8601 UTC string; a time no datetime can hold shows as `out-of-range(<value>)`."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, timezone.utc).isoformat()
    except (OverflowError, OSError, ValueError, TypeError):
        # A row stored before times were checked at the connectors, or written by hand: every
        # reader of the store must still show it.
        return f"out-of-range({ts!r})"


@dataclass(frozen=True, slots=True)
class DetectorProfile:
    """What a detector declares for triage: the weight of its finding alone, and the playbook it suggests."""

    confidence: float
    playbook: str | None


@dataclass(slots=True)
class Finding:
    """What a detector concluded from a window of events; updated in place while activity goes on."""

    detector: str
    title: str
    severity: Severity
    entities: dict[str, str]
    techniques: tuple[str, ...]
    first_seen: float
    last_seen: float
    count: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Stable identity: the same detector about the same entities is the same finding."""
        ents = "|".join(f"{k}={v}" for k, v in sorted(self.entities.items()))
        return hashlib.sha256(f"{self.detector}|{ents}|{self.first_seen:.0f}".encode()).hexdigest()[:24]

    def add_evidence(self, ref: str | None) -> None:
        """Keep a bounded sample of the events behind this finding."""
        # The event that opens a finding reaches here twice (creation, then the first update).
        if ref is not None and len(self.evidence) < MAX_EVIDENCE and (not self.evidence or self.evidence[-1] != ref):
            self.evidence.append(ref)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "key": self.key,
            "detector": self.detector,
            "title": self.title,
            "severity": self.severity,
            "entities": dict(self.entities),
            "techniques": list(self.techniques),
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "count": self.count,
            "counts": dict(self.counts),
            "attributes": dict(self.attributes),
            "evidence": list(self.evidence),
        }


class RecommendedAction(BaseModel):
    """A playbook the analyst recommends, with typed parameters and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    playbook: str = Field(min_length=1, max_length=128)
    parameters: dict[str, str | int | bool | list[str]] = Field(default_factory=dict)
    justification: str = Field(default="", max_length=2000)


class Provenance(BaseModel):
    """Who produced a verdict: the baseline analyst, or a model with everything needed to audit it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    analyst: Literal["baseline", "model"]
    analyst_version: str
    provider: str | None = None
    model: str | None = None
    model_version: str | None = None
    endpoint_host: str | None = None
    prompt_template_version: str | None = None
    prompt_sha256: str | None = None
    response_sha256: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    fallback_reason: str | None = None


class TriageVerdict(BaseModel):
    """An analyst's verdict on one incident; the same shape whether the baseline or a model wrote it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    severity: Severity
    confidence: float = Field(ge=0.0, le=1.0)
    disposition: Disposition
    techniques: tuple[str, ...] = ()
    summary: str = Field(max_length=1000)
    rationale: str = Field(max_length=4000)
    evidence_refs: tuple[str, ...] = ()
    recommended_actions: tuple[RecommendedAction, ...] = ()
    provenance: Provenance


@dataclass(slots=True)
class Incident:
    """Findings grouped by the entity they share and by time; one campaign is one incident."""

    fingerprint: str
    entity: str
    title: str
    severity: Severity
    first_seen: float
    last_seen: float
    findings: dict[str, Finding] = field(default_factory=dict)
    id: int | None = None
    verdict: TriageVerdict | None = None
    status: str = "open"
    # What the policy guard and review queue made of the verdict in this process (a ReviewOutcome;
    # typed loosely so the models stay below the policy layer). Not stored: the audit log has it.
    outcome: Any = None
    # Finding key -> the sensors ([agent] name) that saw it, as the store recorded them.
    sensors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def detectors(self) -> list[str]:
        """The detectors that contributed, sorted."""
        return sorted({f.detector for f in self.findings.values()})

    @property
    def techniques(self) -> list[str]:
        """Every ATT&CK technique id its findings carry, sorted."""
        return sorted({t for f in self.findings.values() for t in f.techniques})

    def entities(self) -> dict[str, list[str]]:
        """Entity role -> sorted distinct values across findings."""
        out: dict[str, set[str]] = {}
        for f in self.findings.values():
            for role, value in f.entities.items():
                out.setdefault(role, set()).add(value)
        return {role: sorted(values) for role, values in sorted(out.items())}

    def counts(self) -> dict[str, int]:
        """Summed counters across findings, plus the number of findings and events."""
        total: dict[str, int] = {"findings": len(self.findings), "events": 0}
        for f in self.findings.values():
            total["events"] += f.count
            for k, v in f.counts.items():
                total[k] = total.get(k, 0) + v
        return total
