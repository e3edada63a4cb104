"""OSCAL Plan of Action and Milestones (POA&M) export: one POA&M item per open obligation.

Each open obligation becomes a poam-item linked to a risk ("obligation not yet met") whose planned
remediation carries the milestones: the obligation's due date and the due dates of the obligations
that count from its completion. UUIDs are version 5 and derived from the organisation and obligation
ids, so exports for successive days refer to the same items.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timezone
from typing import Any

from .report import Report, ReportRow

OSCAL_VERSION = "1.2.3"
NS = "urn:watchstander:guidance"
_ROOT = uuid.UUID("4b0c6c2e-8f0e-5a53-9d41-6a7f1f3c2d10")
OPEN_STANDINGS = frozenset({"overdue", "due_soon", "open", "awaiting_anchor", "no_deadline", "submitted"})


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(_ROOT, "|".join(parts)))


def _end_of_day(d: date) -> str:
    return f"{d.isoformat()}T23:59:59Z"


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _prop(name: str, value: str) -> dict[str, str]:
    return {"name": name, "ns": NS, "value": value}


def _risk_status(row: ReportRow) -> str:
    if row.status == "submitted":
        return "deviation-requested" if row.standing == "overdue" else "remediating"
    return "remediating" if row.status == "in_progress" else "open"


def poam_document(report: Report) -> dict[str, Any]:
    """The POA&M as a JSON-ready dict (validates against NIST's OSCAL POA&M JSON schema)."""
    org = report.organization
    party = _uuid(org, "party")
    dependants: dict[str, list[ReportRow]] = {}
    for r in report.rows:
        for other in report.rows:
            if other.depends_on == r.id:
                dependants.setdefault(r.id, []).append(other)
    items: list[dict[str, Any]] = []
    risks: list[dict[str, Any]] = []
    for r in report.rows:
        if r.standing not in OPEN_STANDINGS:
            continue
        risk_id = _uuid(org, r.id, "risk")
        tasks: list[dict[str, Any]] = []
        if r.due is not None:
            tasks.append({
                "uuid": _uuid(org, r.id, "milestone", "due"), "type": "milestone",
                "title": f"{r.order} Sec. {r.section} deadline: {r.deliverable}"[:250],
                "description": f"Due {r.due.isoformat()} ({r.basis})."
                               + (f" Falls on {r.due_flag}." if r.due_flag else ""),
                "timing": {"on-date": {"date": _end_of_day(r.due)}},
            })
        for dep in dependants.get(r.id, []):
            if dep.due is None and dep.waiting_on is None:
                continue
            task: dict[str, Any] = {
                "uuid": _uuid(org, r.id, "milestone", dep.id), "type": "milestone",
                "title": f"Then: {dep.order} Sec. {dep.section} {dep.title}"[:250],
                "description": f"{dep.rule}; counts from completion of this obligation.",
            }
            if dep.due is not None:
                task["timing"] = {"on-date": {"date": _end_of_day(dep.due)}}
            tasks.append(task)
        response: dict[str, Any] = {
            "uuid": _uuid(org, r.id, "response"), "lifecycle": "planned",
            "title": f"Meet {r.order} Sec. {r.section}",
            "description": r.deliverable,
            "props": [_prop("lead", "; ".join(r.lead) or "all agencies")],
        }
        if tasks:
            response["tasks"] = tasks
        risk: dict[str, Any] = {
            "uuid": risk_id,
            "title": f"{r.order} Sec. {r.section} not yet met: {r.title}",
            "description": f"“{r.clause} …” Deliverable: {r.deliverable}",
            "statement": (f"Standing on {report.as_of.isoformat()}: {r.standing_label} (status {r.status_label}). "
                          f"Deadline rule: {r.rule}. {r.basis}."),
            "status": _risk_status(r),
            "remediations": [response],
        }
        if r.due is not None:
            risk["deadline"] = _end_of_day(r.due)
        risks.append(risk)
        props = [_prop("obligation-id", r.id), _prop("order", r.order), _prop("section", r.section),
                 _prop("standing", r.standing), _prop("status", r.status), _prop("relevance", r.relevance)]
        if r.owner:
            props.append(_prop("owner", r.owner))
        if r.due_flag:
            props.append(_prop("due-date-flag", r.due_flag))
        item: dict[str, Any] = {
            "uuid": _uuid(org, r.id, "poam-item"),
            "title": f"{r.order} Sec. {r.section}: {r.title}",
            "description": r.deliverable + (f" Waiting on {r.waiting_on}." if r.waiting_on else ""),
            "props": props,
            "origins": [{"actors": [{"type": "party", "actor-uuid": party}]}],
            "related-risks": [{"risk-uuid": risk_id}],
        }
        links = [{"href": e.ref, "rel": "evidence", "text": f"sha256 {e.sha256}" if e.sha256 else e.ref}
                 for e in r.evidence if e.kind == "url"]
        if links:
            item["links"] = links
        files = [f"{e.ref} (sha256 {e.sha256})" for e in r.evidence if e.kind == "file"]
        if files or r.notes:
            item["remarks"] = "\n".join(["Evidence files:", *files] if files else []) + (
                ("\n" if files else "") + "\n".join(r.notes) if r.notes else "")
        items.append(item)
    orders = "; ".join(f"{o.name} ({o.citation})" for o in report.orders)
    doc: dict[str, Any] = {
        "uuid": _uuid(org, "poam", report.as_of.isoformat()),
        "metadata": {
            "title": f"{report.title} — Plan of Action and Milestones",
            "last-modified": _iso(report.generated_at),
            "version": report.as_of.isoformat(),
            "oscal-version": OSCAL_VERSION,
            "props": [_prop("as-of", report.as_of.isoformat()), _prop("verdict", report.summary.verdict)],
            "parties": [{"uuid": party, "type": "organization", "name": org}],
            "remarks": f"Open obligations of: {orders}. Generated by {report.generated_by}.",
        },
        "system-id": {"identifier-type": "https://ietf.org/rfc/rfc4122", "id": _uuid(org, "system")},
        "poam-items": items,
    }
    if risks:
        doc["risks"] = risks
    if not items:
        # The schema needs at least one item; say plainly that nothing is open.
        doc["poam-items"] = [{"uuid": _uuid(org, "none-open", report.as_of.isoformat()),
                              "title": "No open obligations",
                              "description": f"All tracked obligations were met, waived or not applicable on "
                                             f"{report.as_of.isoformat()}."}]
    return {"plan-of-action-and-milestones": doc}


def poam_json(report: Report) -> str:
    """The POA&M document as JSON text."""
    return json.dumps(poam_document(report), indent=2, ensure_ascii=False) + "\n"
