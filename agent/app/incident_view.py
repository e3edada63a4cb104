"""How incidents are shown: the JSON contract and the operator's table."""

from __future__ import annotations

from typing import Any

from ..models import Incident, iso


def incident_json(inc: Incident, with_findings: bool = True) -> dict[str, Any]:
    """The JSON form of an incident (a contract other tools rely on)."""
    verdict = inc.verdict.model_dump(mode="json") if inc.verdict else None
    out: dict[str, Any] = {
        "id": inc.id,
        "fingerprint": inc.fingerprint,
        "title": inc.title,
        "severity": inc.verdict.severity if inc.verdict else inc.severity,
        "detector_severity": inc.severity,
        "status": inc.status,
        "entity": inc.entity,
        "detectors": inc.detectors,
        "attack_techniques": inc.techniques,
        "entities": inc.entities(),
        "counts": inc.counts(),
        "first_seen": iso(inc.first_seen),
        "last_seen": iso(inc.last_seen),
        "verdict": verdict,
    }
    if with_findings:
        out["findings"] = [f.as_dict() for f in inc.findings.values()]
    return out


def incidents_table(items: list[Incident]) -> str:
    """A fixed-width table for a terminal."""
    rows = [("ID", "SEVERITY", "DISPOSITION", "LAST SEEN (UTC)", "DETECTORS", "TITLE")]
    for inc in items:
        v = inc.verdict
        rows.append((
            str(inc.id), v.severity if v else inc.severity, v.disposition if v else "-",
            (iso(inc.last_seen) or "")[:19].replace("T", " "), ",".join(inc.detectors), inc.title[:90],
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)
