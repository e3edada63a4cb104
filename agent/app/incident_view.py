"""How incidents are shown: the JSON contract, the operator's table, and the guard's word on each action."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..models import Incident, iso
from ..store.audit import audit_log
from ..store.engine import Store

# The audit actions `decide` writes for one triage: the verdict, then one guard record per action.
_VERDICT = "triage.verdict"
_DECISIONS = ("policy.allow", "policy.refuse")


@dataclass(frozen=True)
class GuardWord:
    """What the policy guard decided on one recommended action, as its audit record keeps it."""

    playbook: str
    allowed: bool
    reason: str | None
    detail: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"playbook": self.playbook, "allowed": self.allowed, "reason": self.reason, "detail": self.detail}


def guard_words(store: Store, inc: Incident) -> list[GuardWord | None]:
    """The guard's decision on each of the verdict's recommended actions, in order (None where unrecorded)."""
    actions = inc.verdict.recommended_actions if inc.verdict else []
    if inc.id is None or not actions:
        return [None] * len(actions)
    found: list[dict[str, Any]] = []
    with store.engine.connect() as conn:
        rows = conn.execute(select(audit_log.c.action, audit_log.c.data)
                            .where(audit_log.c.subject == f"incident:{inc.id}")
                            .where(audit_log.c.action.in_((_VERDICT, *_DECISIONS)))
                            .order_by(audit_log.c.seq.desc()))
        # The newest verdict is the stored one; its decisions follow it in the same transaction.
        for row in rows:
            if row.action == _VERDICT:
                break
            try:
                data = json.loads(row.data)
            except ValueError:
                data = None
            found.append(data if isinstance(data, dict) else {})
    found.reverse()
    if len(found) != len(actions):
        return [None] * len(actions)
    out: list[GuardWord | None] = []
    for action, data in zip(actions, found):
        if data.get("justification") != action.justification or not isinstance(data.get("allowed"), bool):
            out.append(None)
            continue
        reason, detail = data.get("reason"), data.get("detail")
        out.append(GuardWord(str(data.get("playbook") or action.playbook), data["allowed"],
                             None if reason is None else str(reason), None if detail is None else str(detail)))
    return out


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
    out["sensors"] = sorted({name for names in inc.sensors.values() for name in names})
    if with_findings:
        out["findings"] = [{**f.as_dict(), "sensors": inc.sensors.get(key, [])} for key, f in inc.findings.items()]
    return out


def incidents_table(items: list[dict[str, Any]], cell: Callable[..., str]) -> str:
    """A fixed-width table of `incident_json` rows for a terminal; `cell` makes each value safe to show."""
    rows = [("ID", "SEVERITY", "STATUS", "ASSIGNEE", "VERDICT", "LAST SEEN (UTC)", "DETECTORS", "TITLE")]
    for inc in items:
        v = inc.get("verdict")
        status = str(inc.get("status") or "open")
        if inc.get("disposition"):
            status += f" ({inc['disposition']})"
        rows.append((
            str(inc["id"]), cell(str(inc["severity"])), cell(status), cell(str(inc.get("assignee") or "-"), 30),
            cell(str(v["disposition"]) if v else "-"),
            (inc.get("last_seen") or "")[:19].replace("T", " "), cell(",".join(inc["detectors"])),
            cell(str(inc["title"])[:90]),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)
