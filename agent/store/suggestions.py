"""Suggestions and their approvals in the store (component "review").

The state machine and every rule about who may move a suggestion live in agent/policy/review.py;
this module holds the tables, the row types and the queries that need no policy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
)

from .audit import canonical
from .engine import Component

_meta = MetaData()

suggestions = Table(
    "suggestions", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, nullable=True),
    Column("playbook_id", String(64), nullable=False),
    Column("playbook_version", Integer, nullable=False),
    Column("playbook_hash", String(64), nullable=False),
    Column("risk", String(16), nullable=False),
    Column("params_json", Text, nullable=False),
    Column("params_sha256", String(64), nullable=False),
    Column("source", String(16), nullable=False),          # model | baseline | operator
    Column("origin", String(16), nullable=False),          # guard | edit
    Column("requester", String(200), nullable=False),
    Column("justification", Text, nullable=False),
    Column("flags_json", Text, nullable=False),             # e.g. ["suspicion:bad_parameter:address"]
    Column("state", String(16), nullable=False),
    # Bumped by every write; conditional UPDATEs compare it, so of two racing writers one loses.
    Column("version", Integer, nullable=False),
    Column("approvals_required", Integer, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("expires_at", String(40), nullable=False),
    Column("expires_ts", Float, nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("decided_by", String(200), nullable=True),
    Column("reason", Text, nullable=True),
    Column("supersedes", Integer, nullable=True),
    Column("superseded_by", Integer, nullable=True),
    Column("audit_seq", Integer, nullable=True),             # the audit record of its creation
)
Index("ix_suggestions_state", suggestions.c.state, suggestions.c.expires_ts)
Index("ix_suggestions_rate", suggestions.c.playbook_id, suggestions.c.created_ts)
Index("ix_suggestions_incident", suggestions.c.incident_id)

suggestion_approvals = Table(
    "suggestion_approvals", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("suggestion_id", Integer, nullable=False),
    Column("approver", String(200), nullable=False),
    Column("approved_at", String(40), nullable=False),
    Column("playbook_hash", String(64), nullable=False),
    Column("params_sha256", String(64), nullable=False),
    Column("comment", Text, nullable=False),
    # One person counts once per suggestion, whatever races happen above this constraint.
    UniqueConstraint("suggestion_id", "approver", name="ux_suggestion_approvals_person"),
)


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


SCHEMA = Component("review", (_v1,))

SuggestionState = Literal["pending", "approved", "queued", "running", "succeeded", "failed", "rolled_back",
                          "rollback_failed", "interrupted", "rejected", "expired", "superseded"]
STATES: tuple[SuggestionState, ...] = get_args(SuggestionState)
MAX_ID = 2**63 - 1  # the largest id an INTEGER column holds; a larger one cannot name a suggestion
OPEN_STATES: tuple[SuggestionState, ...] = ("pending", "approved", "queued", "running")


def params_digest(params: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of normalised parameters: what an approval binds to."""
    return hashlib.sha256(canonical(dict(params)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SuggestionApproval:
    """One person's approval of one suggestion, bound to the playbook hash and parameters."""

    approver: str
    approved_at: str
    playbook_hash: str
    params_sha256: str
    comment: str


@dataclass(frozen=True)
class Suggestion:
    """A recommended action that passed the policy guard, and where it stands."""

    id: int
    incident_id: int | None
    playbook_id: str
    playbook_version: int
    playbook_hash: str
    risk: str
    parameters: dict[str, Any]
    params_json: str
    params_sha256: str
    source: str
    origin: str
    requester: str
    justification: str
    flags: tuple[str, ...]
    state: SuggestionState
    version: int
    approvals_required: int
    created_at: str
    created_ts: float
    expires_at: str
    expires_ts: float
    updated_at: str
    decided_by: str | None
    reason: str | None
    supersedes: int | None
    superseded_by: int | None
    audit_seq: int | None
    approvals: tuple[SuggestionApproval, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (approvals included)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("params_json", "approvals")}
        out["flags"] = list(self.flags)
        out["approvals"] = [_approval_dict(a) for a in self.approvals]
        return out


def _approval_dict(a: SuggestionApproval) -> dict[str, Any]:
    return {k: getattr(a, k) for k in SuggestionApproval.__dataclass_fields__}


def _loads(text: str, fallback: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return fallback


def suggestion_from_row(row: Any, approvals: Sequence[SuggestionApproval] = ()) -> Suggestion:
    """Rebuild a Suggestion from its stored row (unreadable JSON shows as empty, and fails binding)."""
    params = _loads(row.params_json, {})
    flags = _loads(row.flags_json, [])
    return Suggestion(
        id=row.id, incident_id=row.incident_id, playbook_id=row.playbook_id,
        playbook_version=row.playbook_version, playbook_hash=row.playbook_hash, risk=row.risk,
        parameters=params if isinstance(params, dict) else {}, params_json=row.params_json,
        params_sha256=row.params_sha256, source=row.source, origin=row.origin, requester=row.requester,
        justification=row.justification, flags=tuple(str(f) for f in flags) if isinstance(flags, list) else (),
        state=cast(SuggestionState, row.state), version=row.version, approvals_required=row.approvals_required,
        created_at=row.created_at, created_ts=row.created_ts, expires_at=row.expires_at,
        expires_ts=row.expires_ts, updated_at=row.updated_at, decided_by=row.decided_by, reason=row.reason,
        supersedes=row.supersedes, superseded_by=row.superseded_by, audit_seq=row.audit_seq,
        approvals=tuple(approvals),
    )


# Ids bound per IN (...) query: well under SQLite's oldest limit of 999 variables per statement.
_IDS_PER_QUERY = 500


def _approval_from_row(r: Any) -> SuggestionApproval:
    return SuggestionApproval(r.approver, r.approved_at, r.playbook_hash, r.params_sha256, r.comment)


def load_approvals(conn: Connection, suggestion_id: int) -> list[SuggestionApproval]:
    """The approvals given for one suggestion, oldest first."""
    t = suggestion_approvals
    rows = conn.execute(select(t).where(t.c.suggestion_id == suggestion_id).order_by(t.c.id)).all()
    return [_approval_from_row(r) for r in rows]


def load_approvals_for(conn: Connection, suggestion_ids: Sequence[int]) -> dict[int, list[SuggestionApproval]]:
    """The approvals of many suggestions by suggestion id, oldest first: one query per 500 ids, not per id."""
    t = suggestion_approvals
    out: dict[int, list[SuggestionApproval]] = {}
    ids = sorted(set(suggestion_ids))
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start:start + _IDS_PER_QUERY]
        for r in conn.execute(select(t).where(t.c.suggestion_id.in_(chunk)).order_by(t.c.id)):
            out.setdefault(int(r.suggestion_id), []).append(_approval_from_row(r))
    return out


def load_suggestion(conn: Connection, suggestion_id: int) -> Suggestion | None:
    """One suggestion with its approvals, or None (also for an id no column could hold)."""
    if not 0 < suggestion_id <= MAX_ID:
        return None
    row = conn.execute(select(suggestions).where(suggestions.c.id == suggestion_id)).first()
    if row is None:
        return None
    return suggestion_from_row(row, load_approvals(conn, suggestion_id))


def count_created_since(conn: Connection, playbook_id: str, since_ts: float) -> int:
    """Suggestions the guard created for a playbook since `since_ts` (operator edits not counted)."""
    t = suggestions
    q = select(func.count()).select_from(t).where(
        t.c.playbook_id == playbook_id, t.c.created_ts >= since_ts, t.c.origin == "guard")
    return int(conn.execute(q).scalar_one())


def find_open_duplicate(conn: Connection, incident_id: int | None, playbook_id: str, params_sha256: str) -> int | None:
    """The id of an open suggestion for the same incident, playbook and parameters, if any."""
    t = suggestions
    q = select(t.c.id).where(
        t.c.playbook_id == playbook_id, t.c.params_sha256 == params_sha256, t.c.state.in_(OPEN_STATES),
        t.c.incident_id.is_(None) if incident_id is None else t.c.incident_id == incident_id,
    ).order_by(t.c.id).limit(1)
    hit = conn.execute(q).scalar()
    return int(hit) if hit is not None else None
