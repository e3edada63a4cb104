"""The incident lifecycle: people acknowledge, assign, comment on, close and reopen incidents, each audited.

    open ──acknowledge──► acknowledged ──close(disposition, reason)──► closed
      │                                                                 │
      └──────────────────close(disposition, reason)──────────────────►  │
      ▲                                                                 │
      └───────────────reopen(reason) (or detection: recurrence)─────────┘

assign is allowed while open or acknowledged, comment in every status. Closing takes a
disposition (true_positive, benign, false_positive) and a reason; reopening a reason. Every change
writes its note and its audit record in the same transaction as the change itself, and every
refused transition is audited too (`incident.<what>_refused`).

Texts (comments, reasons) hold at most MAX_TEXT characters and no control, format (bidi,
zero-width), separator or surrogate characters other than newline and tab: they are refused, not
silently rewritten, so what an operator reads is what was written (the same rule the policy guard
applies to a justification).

Concurrency: the change takes the store's write lock before it reads (a no-op UPDATE), and writes
with a conditional UPDATE on the row's version, so of two people closing one incident at once one
closes it and the other gets IncidentTransitionError("already_closed").
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection

from ..clock import Clock
from ..errors import (
    IncidentConcurrentUpdate,
    IncidentError,
    IncidentInputError,
    IncidentNotFound,
    IncidentTransitionError,
)
from ..store.audit import AuditLog
from ..store.engine import Store
from ..store.incidents import DISPOSITIONS, MAX_ID, IncidentNote, IncidentState, IncidentStore

MAX_TEXT = 4000
MAX_ASSIGNEE = 200
_RETRIES = 5
# Control, format (bidi overrides, zero-width), surrogate, private-use-free... and line/paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
T = TypeVar("T")


class _LostRace(Exception):
    """A conditional UPDATE matched no row: someone else changed the incident first."""


def check_text(value: object, what: str = "text", *, limit: int = MAX_TEXT) -> str:
    """`value` if it is a non-empty string of at most `limit` characters with nothing that could rewrite a screen."""
    if not isinstance(value, str):
        raise IncidentInputError(f"{what}: expected a string", reason="bad_text")
    if not value.strip():
        raise IncidentInputError(f"{what} must not be empty", reason="empty_text")
    if len(value) > limit:
        raise IncidentInputError(f"{what} is {len(value)} characters; at most {limit}", reason="text_too_long")
    for ch in value:
        if ch not in "\n\t" and unicodedata.category(ch) in _REFUSED_CATEGORIES:
            raise IncidentInputError(f"{what} holds the control or format character U+{ord(ch):04X}",
                                     reason="bad_text")
    return value


def check_assignee(value: object) -> str:
    """A person's name or principal: one line of visible characters (spaces allowed), at most MAX_ASSIGNEE."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ASSIGNEE or value != value.strip():
        raise IncidentInputError(f"assignee: expected a name of 1 to {MAX_ASSIGNEE} characters without "
                                 "leading or trailing space", reason="bad_assignee")
    if any(ch != " " and unicodedata.category(ch)[0] in "CZ" for ch in value):
        raise IncidentInputError("assignee holds a control, format or separator character", reason="bad_assignee")
    return value


class IncidentLifecycle:
    """Moves incidents through open → acknowledged → closed (and back by reopen), with notes, audited."""

    def __init__(self, store: Store, audit: AuditLog, clock: Clock) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self.incidents = IncidentStore(store, clock, audit)

    # ------------------------------------------------------------------ people's changes

    def acknowledge(self, incident_id: int, principal: str) -> IncidentState:
        """open → acknowledged; refused with already_acknowledged or already_closed."""
        def act(c: Connection, s: IncidentState) -> None:
            if s.status != "open":
                raise self._refusal(s, "acknowledge")
            note = self.incidents.add_note(c, s.id, principal, "acknowledge", "acknowledged")
            self._write(c, s, principal, "acknowledged", note, {"status": "acknowledged",
                                                                 "status_changed_at": self._now()})
        return self._change(incident_id, principal, "acknowledge", act)

    def assign(self, incident_id: int, principal: str, assignee: str | None) -> IncidentState:
        """Assign (or, with None, unassign) an open or acknowledged incident."""
        who = None if assignee is None else check_assignee(assignee)

        def act(c: Connection, s: IncidentState) -> None:
            if s.status == "closed":
                raise self._refusal(s, "assign")
            text = f"assigned to {who}" if who is not None else "unassigned"
            note = self.incidents.add_note(c, s.id, principal, "assign", text)
            if not self.incidents.write_state(c, s, assignee=who):
                raise _LostRace()
            self._audit.append(principal, "incident.assign", f"incident:{s.id}", {
                "from": s.assignee, "to": who, "status": s.status, "note": note.id}, conn=c)
        return self._change(incident_id, principal, "assign", act)

    def comment(self, incident_id: int, principal: str, text: str) -> IncidentNote:
        """Add a comment, in any status; returns the note."""
        body = check_text(text, "comment")
        box: dict[str, IncidentNote] = {}

        def act(c: Connection, s: IncidentState) -> None:
            note = self.incidents.add_note(c, s.id, principal, "comment", body)
            if not self.incidents.write_state(c, s):
                raise _LostRace()
            self._audit.append(principal, "incident.comment", f"incident:{s.id}",
                               {"status": s.status, "note": note.id, "text": body}, conn=c)
            box["note"] = note
        self._change(incident_id, principal, "comment", act)
        return box["note"]

    def close(self, incident_id: int, principal: str, disposition: str, reason: str) -> IncidentState:
        """open or acknowledged → closed with a disposition and a reason; refused with already_closed."""
        if disposition not in DISPOSITIONS:
            raise IncidentInputError(f"disposition: one of {', '.join(DISPOSITIONS)}", incident_id,
                                     "bad_disposition")
        why = check_text(reason, "reason")

        def act(c: Connection, s: IncidentState) -> None:
            if s.status == "closed":
                raise self._refusal(s, "close")
            note = self.incidents.add_note(c, s.id, principal, "close", f"closed as {disposition}: {why}")
            now = self._now()
            self._write(c, s, principal, "closed", note, {
                "status": "closed", "disposition": disposition, "closed_at": now, "closed_by": principal,
                "status_changed_at": now, "activity_after_close": 0}, disposition=disposition, reason=why)
        return self._change(incident_id, principal, "close", act)

    def reopen(self, incident_id: int, principal: str, reason: str) -> IncidentState:
        """closed → open with a reason; refused with not_closed."""
        why = check_text(reason, "reason")

        def act(c: Connection, s: IncidentState) -> None:
            if s.status != "closed":
                raise self._refusal(s, "reopen")
            note = self.incidents.add_note(c, s.id, principal, "reopen", f"reopened: {why}")
            self._write(c, s, principal, "open", note, {
                "status": "open", "disposition": None, "closed_at": None, "closed_by": None,
                "status_changed_at": self._now(), "activity_after_close": 0},
                disposition=s.disposition, reason=why)
        return self._change(incident_id, principal, "reopen", act)

    # ------------------------------------------------------------------ reading

    def state(self, incident_id: int) -> IncidentState:
        """Where the incident stands; raises IncidentNotFound."""
        found = self.incidents.lifecycle(self._known(incident_id))
        if found is None:
            raise IncidentNotFound(f"no incident with id {incident_id}", incident_id)
        return found[0]

    def notes(self, incident_id: int) -> list[IncidentNote]:
        """Every note on the incident, oldest first; raises IncidentNotFound."""
        found = self.incidents.lifecycle(self._known(incident_id))
        if found is None:
            raise IncidentNotFound(f"no incident with id {incident_id}", incident_id)
        return found[1]

    # ------------------------------------------------------------------ plumbing

    def _now(self) -> str:
        return self._clock().isoformat()

    @staticmethod
    def _known(incident_id: int) -> int:
        if isinstance(incident_id, bool) or not isinstance(incident_id, int) or not 0 < incident_id <= MAX_ID:
            raise IncidentNotFound(f"no incident with id {incident_id}", None)
        return incident_id

    @staticmethod
    def _refusal(s: IncidentState, what: str) -> IncidentTransitionError:
        """The typed refusal of `what` on an incident in the status it is in."""
        if s.status == "closed":
            reason = "already_closed"
        elif what == "acknowledge":
            reason = "already_acknowledged"
        elif what == "reopen":
            reason = "not_closed"
        else:
            reason = "illegal_transition"
        return IncidentTransitionError(f"incident #{s.id} is {s.status}: cannot {what} it", s.id, reason, s.status)

    def _write(self, c: Connection, s: IncidentState, principal: str, to: str, note: IncidentNote,
               values: dict[str, Any], **audit: Any) -> None:
        if not self.incidents.write_state(c, s, **values):
            raise _LostRace()
        self._audit.append(principal, "incident.transition", f"incident:{s.id}",
                           {"from": s.status, "to": to, "note": note.id, **audit}, conn=c)

    def _change(self, incident_id: int, principal: str, what: str,
                act: Callable[[Connection, IncidentState], None]) -> IncidentState:
        """Run `act` on the locked, freshly read incident; retry lost races; audit a refused transition."""
        self._known(incident_id)
        for _ in range(_RETRIES):
            try:
                with self._store.begin() as c:
                    self.incidents.lock(c, incident_id)
                    s = self.incidents.state(c, incident_id)
                    if s is None:
                        raise IncidentNotFound(f"no incident with id {incident_id}", incident_id)
                    act(c, s)
                    after = self.incidents.state(c, incident_id)
                    assert after is not None
                    return after
            except _LostRace:
                continue
            except IncidentTransitionError as exc:
                self._refused(principal, what, incident_id, exc)
                raise
        raise IncidentConcurrentUpdate("the incident kept changing while this change was being recorded; "
                                       "try again", incident_id)

    def _refused(self, principal: str, what: str, incident_id: int, exc: IncidentError) -> None:
        """Audit a refused transition in its own transaction (the caller re-raises)."""
        with self._store.begin() as c:
            self.incidents.lock(c, incident_id)
            self._audit.append(principal, f"incident.{what}_refused", f"incident:{incident_id}",
                               {"reason": exc.reason, "state": exc.state, "message": str(exc)}, conn=c)
