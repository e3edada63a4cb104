"""The report model every export format is written from, and the agent's operational evidence."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from .catalogue import depends_on
from .model import ORDER_TYPE_NAMES, Catalogue
from .tracker import STANDING_LABELS, STATUS_LABELS, Summary, TrackedObligation

SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OperationalEvidence(_Frozen):
    """What the agent itself did up to the report date: evidence that the cyber-defense work is happening."""

    incidents_triaged: int = Field(0, ge=0)
    verdicts_model: int = Field(0, ge=0, description="verdicts refined by the AI model")
    verdicts_baseline: int = Field(0, ge=0, description="verdicts from the built-in baseline analyst")
    model_fallbacks: int = Field(0, ge=0, description="triages where the model failed and the baseline stood")
    suggestions_approved: int = Field(0, ge=0)
    suggestions_rejected: int = Field(0, ge=0)
    playbooks_run: int = Field(0, ge=0)
    median_detection_to_decision_s: float | None = Field(None, ge=0)
    decisions_timed: int = Field(0, ge=0, description="how many decisions the median is taken over")
    notes: tuple[str, ...] = Field((), description="what was not available, and why")


class EvidenceItem(_Frozen):
    """One piece of evidence as exported."""

    kind: str
    ref: str
    sha256: str | None = None
    added_at: str
    added_by: str


class ReportRow(_Frozen):
    """One obligation, flattened for every export format."""

    id: str
    order: str
    catalogue_id: str
    section: str
    title: str
    clause: str
    lead: tuple[str, ...]
    consulted: tuple[str, ...]
    relevance: str
    deliverable: str
    rule: str
    basis: str
    due: date | None
    computed_due: date | None
    due_override_reason: str | None
    due_flag: str | None
    days_left: int | None
    standing: str
    standing_label: str
    status: str
    status_label: str
    owner: str | None
    completed_on: date | None
    waiting_on: str | None
    evidence: tuple[EvidenceItem, ...]
    notes: tuple[str, ...]
    updated_at: str | None
    implements: str | None
    depends_on: str | None


class OrderInfo(_Frozen):
    """One order covered by the report."""

    id: str
    name: str
    type: str
    title: str
    signed: date | None
    citation: str
    source_url: str | None


class Report(_Frozen):
    """Everything a report shows, in the order it shows it."""

    schema_version: int = SCHEMA_VERSION
    title: str
    organization: str
    as_of: date
    generated_at: datetime
    generated_by: str
    orders: tuple[OrderInfo, ...]
    summary: Summary
    rows: tuple[ReportRow, ...]
    operational: OperationalEvidence


def row_of(t: TrackedObligation) -> ReportRow:
    """Flatten one tracked obligation."""
    ob, st = t.obligation, t.state
    return ReportRow(
        id=ob.id, order=t.order, catalogue_id=t.catalogue_id, section=ob.section, title=ob.title,
        clause=ob.clause, lead=ob.lead, consulted=ob.consulted, relevance=t.relevance,
        deliverable=ob.deliverable, rule=t.rule, basis=t.basis, due=t.due, computed_due=t.computed_due,
        due_override_reason=st.override_reason if st.due_override else None, due_flag=t.due_flag,
        days_left=t.days_left, standing=t.standing, standing_label=STANDING_LABELS[t.standing],
        status=st.status, status_label=_status_label(t), owner=st.owner, completed_on=st.completed_on,
        waiting_on=t.waiting_on,
        evidence=tuple(EvidenceItem(kind=e.kind, ref=e.ref, sha256=e.sha256, added_at=e.added_at.isoformat(),
                                    added_by=e.added_by) for e in st.evidence),
        notes=tuple(f"{n.at.date().isoformat()} {n.by}: {n.text}" for n in st.notes),
        updated_at=st.updated_at.isoformat() if st.updated_at else None, implements=ob.implements,
        depends_on=depends_on(ob),
    )


def _status_label(t: TrackedObligation) -> str:
    st = t.state
    if st.status == "complete" and t.standing != "complete" and st.completed_on is not None:
        return f"Completed {st.completed_on.isoformat()}, after this date"
    return STATUS_LABELS[st.status]


def build_report(*, title: str, organization: str, as_of: date, generated_at: datetime, generated_by: str,
                 catalogues: Sequence[Catalogue], rows: Sequence[TrackedObligation], summary: Summary,
                 operational: OperationalEvidence | None = None) -> Report:
    """Assemble a report from tracked rows (already filtered and sorted by the caller)."""
    orders = tuple(OrderInfo(id=c.id, name=c.display_name, type=ORDER_TYPE_NAMES[c.type], title=c.title,
                             signed=c.signed, citation=c.citation, source_url=c.source_url) for c in catalogues)
    return Report(title=title, organization=organization, as_of=as_of, generated_at=generated_at,
                  generated_by=generated_by, orders=orders, summary=summary,
                  rows=tuple(row_of(r) for r in rows), operational=operational or OperationalEvidence())


def report_json(report: Report) -> str:
    """The report as JSON for other tools (validates against report_json_schema())."""
    return json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def report_json_schema() -> dict[str, object]:
    """JSON Schema (draft 2020-12) of the JSON export."""
    return Report.model_json_schema(mode="serialization")


def format_duration(seconds: float | None) -> str:
    """Seconds as '3 h 20 min', '45 min', '12 s' or 'n/a'."""
    if seconds is None:
        return "n/a"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
