"""Store tables for the guidance tracker (component "guidance") and the transactions that change them.

Every change to an obligation's status, owner, evidence, notes or due-date override appends an audit
record in the same transaction; each record carries the full state after the change, so the state on
any past day can be replayed from the audit chain.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, Text, UniqueConstraint, delete, select

from watchstander.guidance.errors import TrackingError
from watchstander.guidance.evidence import EvidenceRef
from watchstander.guidance.model import Obligation
from watchstander.guidance.tracker import CLOSED, STATUSES, Evidence, Note, Status, TrackingState

from ..clock import Clock
from ..errors import InputError
from .audit import AuditLog, audit_log
from .engine import Component, Store

_meta = MetaData()
state_t = Table(
    "guidance_state", _meta,
    Column("obligation_id", String(80), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("owner", String(200)),
    Column("due_override", String(10)),
    Column("override_reason", Text),
    Column("completed_on", String(10)),
    Column("updated_at", String(40), nullable=False),
    Column("updated_by", String(200), nullable=False),
)
evidence_t = Table(
    "guidance_evidence", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("obligation_id", String(80), nullable=False, index=True),
    Column("kind", String(8), nullable=False),
    Column("ref", Text, nullable=False),
    Column("sha256", String(64)),
    Column("size", Integer),
    Column("note", Text),
    Column("added_at", String(40), nullable=False),
    Column("added_by", String(200), nullable=False),
)
notes_t = Table(
    "guidance_notes", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("obligation_id", String(80), nullable=False, index=True),
    Column("text", Text, nullable=False),
    Column("at", String(40), nullable=False),
    Column("by", String(200), nullable=False),
)
events_t = Table(
    "guidance_events", _meta,
    Column("name", String(80), primary_key=True),
    Column("occurred_on", String(10), nullable=False),
    Column("note", Text),
    Column("recorded_at", String(40), nullable=False),
    Column("recorded_by", String(200), nullable=False),
)
site_t = Table(
    "guidance_site_obligations", _meta,
    Column("obligation_id", String(80), primary_key=True),
    Column("catalogue_id", String(40), nullable=False),
    Column("data", Text, nullable=False),
    Column("added_at", String(40), nullable=False),
    Column("added_by", String(200), nullable=False),
)
reminders_t = Table(
    "guidance_reminders_sent", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("obligation_id", String(80), nullable=False),
    Column("due", String(10), nullable=False),
    Column("key", String(40), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("sent_at", String(40), nullable=False),
    UniqueConstraint("obligation_id", "due", "key", "channel"),
)


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


SCHEMA = Component("guidance", (_v1,))

SITE_CATALOGUE = "site"


def _d(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _snapshot(st: TrackingState) -> dict[str, Any]:
    snapshot: dict[str, Any] = st.model_dump(mode="json")
    return snapshot


class GuidanceStore:
    """Reads and changes guidance tracking state; every change is audited in the same transaction."""

    def __init__(self, store: Store, audit: AuditLog, clock: Clock) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock

    # -- reading ---------------------------------------------------------------------------------

    def states(self, as_of: date | None = None, *, as_recorded: bool = False) -> dict[str, TrackingState]:
        """Tracking state as known now; with `as_recorded`, as it had been recorded by the end of `as_of`."""
        if as_recorded and as_of is not None:
            return self._replayed_states(as_of)
        with self._store.engine.connect() as conn:
            return self._current_states(conn)

    def _current_states(self, conn: Connection) -> dict[str, TrackingState]:
        evidence: dict[str, list[Evidence]] = {}
        for row in conn.execute(select(evidence_t).order_by(evidence_t.c.id)):
            evidence.setdefault(row.obligation_id, []).append(Evidence(
                kind=row.kind, ref=row.ref, sha256=row.sha256, size=row.size, note=row.note,
                added_at=datetime.fromisoformat(row.added_at), added_by=row.added_by))
        notes: dict[str, list[Note]] = {}
        for row in conn.execute(select(notes_t).order_by(notes_t.c.id)):
            notes.setdefault(row.obligation_id, []).append(
                Note(at=datetime.fromisoformat(row.at), by=row.by, text=row.text))
        out: dict[str, TrackingState] = {}
        for row in conn.execute(select(state_t)):
            out[row.obligation_id] = TrackingState(
                obligation_id=row.obligation_id, status=row.status, owner=row.owner,
                due_override=_d(row.due_override), override_reason=row.override_reason,
                completed_on=_d(row.completed_on), updated_at=datetime.fromisoformat(row.updated_at),
                updated_by=row.updated_by, evidence=tuple(evidence.get(row.obligation_id, ())),
                notes=tuple(notes.get(row.obligation_id, ())))
        return out

    def _replayed_states(self, as_of: date) -> dict[str, TrackingState]:
        cutoff = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=timezone.utc).isoformat()
        out: dict[str, TrackingState] = {}
        with self._store.engine.connect() as conn:
            rows = conn.execute(select(audit_log.c.subject, audit_log.c.data, audit_log.c.time)
                                .where(audit_log.c.action.like("guidance.obligation.%"))
                                .order_by(audit_log.c.seq))
            for row in rows:
                if datetime.fromisoformat(row.time).astimezone(timezone.utc).isoformat() >= cutoff:
                    continue
                snap = json.loads(row.data).get("state")
                if snap:
                    out[row.subject] = TrackingState.model_validate(snap)
        return out

    def events(self, as_of: date | None = None) -> dict[str, date]:
        """Recorded events by name (those on or before `as_of` when given)."""
        with self._store.engine.connect() as conn:
            found = {r.name: date.fromisoformat(r.occurred_on) for r in conn.execute(select(events_t))}
        return {k: v for k, v in found.items() if as_of is None or v <= as_of}

    def site_obligations(self) -> list[tuple[str, Obligation]]:
        """Obligations the site added with `guidance add`, with the catalogue each belongs to."""
        with self._store.engine.connect() as conn:
            rows = conn.execute(select(site_t).order_by(site_t.c.added_at, site_t.c.obligation_id)).all()
        return [(r.catalogue_id, Obligation.model_validate_json(r.data)) for r in rows]

    def reminders_sent(self) -> set[tuple[str, str, str, str]]:
        """(obligation id, due date, reminder key, channel) for every reminder already delivered."""
        with self._store.engine.connect() as conn:
            return {(r.obligation_id, r.due, r.key, r.channel) for r in conn.execute(select(reminders_t))}

    # -- changing --------------------------------------------------------------------------------

    def update(self, obligation_id: str, actor: str, *, status: Status | None = None,
               owner: str | None = None, note: str | None = None, evidence: Sequence[EvidenceRef] = (),
               due_override: date | None = None, override_reason: str | None = None,
               clear_override: bool = False, completed_on: date | None = None) -> TrackingState:
        """Apply one update in one transaction, appending an audit record per kind of change."""
        if status is not None and status not in STATUSES:
            raise TrackingError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        if due_override is not None and not (override_reason and override_reason.strip()):
            raise TrackingError("a due-date override needs a reason (--reason)")
        if due_override is not None and clear_override:
            raise TrackingError("give either a new due date or --clear-due, not both")
        now = self._clock()
        stamp = now.isoformat()
        with self._store.begin() as conn:
            before = self._current_states(conn).get(obligation_id) or TrackingState(obligation_id=obligation_id)
            changes: list[tuple[str, dict[str, Any]]] = []
            fields: dict[str, Any] = {}
            if status is not None and status != before.status:
                fields["status"] = status
                changes.append(("status", {"from": before.status, "to": status}))
            new_status = status or before.status
            if new_status == "complete":
                done = completed_on or before.completed_on or now.date()
                if done != before.completed_on:
                    fields["completed_on"] = done
                    changes.append(("completed", {"on": done.isoformat()}))
            elif completed_on is not None:
                raise TrackingError("--completed-on needs status complete")
            elif before.completed_on is not None and status is not None and status not in CLOSED:
                fields["completed_on"] = None  # reopened
            if owner is not None and owner != (before.owner or ""):
                fields["owner"] = owner or None
                changes.append(("owner", {"from": before.owner, "to": owner or None}))
            if due_override is not None and due_override != before.due_override:
                fields["due_override"] = due_override
                fields["override_reason"] = override_reason
                changes.append(("due_override", {"from": before.due_override, "to": due_override,
                                                 "reason": override_reason}))
            if clear_override and before.due_override is not None:
                fields["due_override"] = None
                fields["override_reason"] = None
                changes.append(("due_override", {"from": before.due_override, "to": None,
                                                 "reason": override_reason}))
            new_evidence = [Evidence(kind=e.kind, ref=e.ref, sha256=e.sha256, size=e.size,
                                     added_at=now, added_by=actor) for e in evidence]
            for ev in new_evidence:
                changes.append(("evidence", ev.model_dump(mode="json")))
            new_notes = [Note(at=now, by=actor, text=note)] if note else []
            if new_notes:
                changes.append(("note", {"text": note}))
            if not changes and not fields:
                raise TrackingError(f"nothing to change for {obligation_id}")
            after = before.model_copy(update={
                **fields, "evidence": before.evidence + tuple(new_evidence),
                "notes": before.notes + tuple(new_notes), "updated_at": now, "updated_by": actor})
            values = {
                "status": after.status, "owner": after.owner,
                "due_override": after.due_override.isoformat() if after.due_override else None,
                "override_reason": after.override_reason,
                "completed_on": after.completed_on.isoformat() if after.completed_on else None,
                "updated_at": stamp, "updated_by": actor,
            }
            exists = conn.execute(select(state_t.c.obligation_id)
                                  .where(state_t.c.obligation_id == obligation_id)).first()
            if exists:
                conn.execute(state_t.update().where(state_t.c.obligation_id == obligation_id).values(**values))
            else:
                conn.execute(state_t.insert().values(obligation_id=obligation_id, **values))
            for ev in new_evidence:
                conn.execute(evidence_t.insert().values(
                    obligation_id=obligation_id, kind=ev.kind, ref=ev.ref, sha256=ev.sha256, size=ev.size,
                    note=ev.note, added_at=stamp, added_by=actor))
            for n in new_notes:
                conn.execute(notes_t.insert().values(obligation_id=obligation_id, text=n.text, at=stamp, by=actor))
            snapshot = _snapshot(after)
            for kind, data in changes or [("status", {"from": before.status, "to": after.status})]:
                self._audit.append(actor, f"guidance.obligation.{kind}", obligation_id,
                                   {**json.loads(json.dumps(data, default=str)), "state": snapshot}, conn=conn)
        return after

    def record_event(self, name: str, occurred_on: date, actor: str, note: str | None = None) -> None:
        """Record (or correct) the day a named event happened; dependent deadlines count from it."""
        stamp = self._clock().isoformat()
        with self._store.begin() as conn:
            prior = conn.execute(select(events_t).where(events_t.c.name == name)).first()
            conn.execute(delete(events_t).where(events_t.c.name == name))
            conn.execute(events_t.insert().values(name=name, occurred_on=occurred_on.isoformat(), note=note,
                                                  recorded_at=stamp, recorded_by=actor))
            self._audit.append(actor, "guidance.event", name,
                               {"occurred_on": occurred_on.isoformat(), "note": note,
                                "previous": prior.occurred_on if prior else None}, conn=conn)

    def add_site_obligation(self, catalogue_id: str, obligation: Obligation, actor: str) -> None:
        """Store a site's own follow-on obligation (its department's implementing guidance)."""
        stamp = self._clock().isoformat()
        with self._store.begin() as conn:
            if conn.execute(select(site_t.c.obligation_id).where(site_t.c.obligation_id == obligation.id)).first():
                raise InputError(f"site obligation {obligation.id!r} already exists")
            data = obligation.model_dump_json(exclude_defaults=False)
            conn.execute(site_t.insert().values(obligation_id=obligation.id, catalogue_id=catalogue_id, data=data,
                                                added_at=stamp, added_by=actor))
            self._audit.append(actor, "guidance.site.add", obligation.id,
                               {"catalogue": catalogue_id, "obligation": json.loads(data)}, conn=conn)

    def mark_reminder_sent(self, obligation_id: str, due: date, key: str, channel: str, actor: str) -> bool:
        """Remember a delivered reminder (False if it was already recorded); audited."""
        stamp = self._clock().isoformat()
        with self._store.begin() as conn:
            seen = conn.execute(select(reminders_t.c.id).where(
                reminders_t.c.obligation_id == obligation_id, reminders_t.c.due == due.isoformat(),
                reminders_t.c.key == key, reminders_t.c.channel == channel)).first()
            if seen:
                return False
            conn.execute(reminders_t.insert().values(obligation_id=obligation_id, due=due.isoformat(), key=key,
                                                     channel=channel, sent_at=stamp))
            self._audit.append(actor, "guidance.reminder.sent", obligation_id,
                               {"due": due.isoformat(), "key": key, "channel": channel}, conn=conn)
        return True

    def history(self, obligation_id: str) -> list[dict[str, Any]]:
        """The audit records about one obligation, oldest first (state snapshots left out)."""
        out = []
        for rec in self._audit.records():
            if rec.subject == obligation_id and rec.action.startswith("guidance."):
                data = {k: v for k, v in rec.data.items() if k != "state"}
                out.append({"seq": rec.seq, "time": rec.time, "actor": rec.actor, "action": rec.action, **data})
        return out
