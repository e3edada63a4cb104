"""The review queue: suggestions as a state machine that people move, with typed errors for every refusal.

    pending ──approve (enough distinct approvers)──► approved ──claim──► queued ──► running ──► succeeded
       │  ╲──reject──► rejected          │  ╲──reject──► rejected          │            ├──► failed
       │   ╲─edit───► superseded (+ a new pending suggestion)              └──► failed   └──► rolled_back
       └──TTL──► expired                 └──TTL──► expired

An approval binds the suggestion id, the playbook's content hash and the SHA-256 of the canonical
normalised parameters. It is single-use: `claim` consumes it (approved → queued) after checking
the binding once more, and nothing returns to `approved`. Every transition, approval, refusal and
guard decision is written to the audit log in the same transaction as the change it records.

Concurrency: every write is a conditional UPDATE ... WHERE state = <seen> AND version = <seen>
that bumps `version`; a writer whose UPDATE matched no row lost a race and starts again from a
fresh read, so two approvers racing can neither both complete one approval nor skip past the
two-person count.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from watchstander.playbooks import Playbook, UnknownPlaybookError

from ..clock import Clock
from ..config.policy import PolicyConfig
from ..models import Incident, RecommendedAction, TriageVerdict
from ..store.audit import AuditLog, audit_head, audit_log, canonical, lock_chain, record_hash
from ..store.engine import Store
from ..store.suggestions import (
    MAX_ID,
    STATES,
    Suggestion,
    SuggestionState,
    find_open_duplicate,
    load_approvals_for,
    load_suggestion,
    params_digest,
    suggestion_approvals,
    suggestion_from_row,
    suggestions,
)
from .errors import (
    AlreadyDecided,
    ConcurrentUpdate,
    DuplicateApprover,
    IllegalTransition,
    ParametersRefused,
    ParametersTampered,
    PlaybookChanged,
    RequesterCannotApprove,
    ReviewError,
    SuggestionExpired,
    SuggestionNotFound,
    SuggestionSuperseded,
)
from .guard import GuardDecision, PolicyGuard, suspicion_reasons
from .people import People

log = logging.getLogger(__name__)

TRANSITIONS: dict[SuggestionState, frozenset[SuggestionState]] = {
    "pending": frozenset({"approved", "rejected", "expired", "superseded"}),
    "approved": frozenset({"queued", "rejected", "expired"}),
    "queued": frozenset({"running", "failed", "interrupted"}),
    "running": frozenset({"succeeded", "failed", "rolled_back", "rollback_failed", "interrupted"}),
    **{s: frozenset() for s in ("succeeded", "failed", "rolled_back", "rollback_failed", "interrupted", "rejected",
                                "expired", "superseded")},
}
assert set(TRANSITIONS) == set(STATES)
# Moves made only through their own methods, which carry the checks that belong to them.
_GUARDED_TARGETS = {"approved": "approve", "queued": "claim", "rejected": "reject", "expired": "expire_due",
                    "superseded": "edit"}
AUTO_APPROVER = "watchstander:policy"
_RETRIES = 5


class _LostRace(Exception):
    """A conditional UPDATE matched no row: someone else moved the suggestion first."""


@dataclass(frozen=True)
class ReviewOutcome:
    """What one verdict produced: the guard's decisions, new suggestions, and suspicion raised."""

    decisions: list[GuardDecision]
    created: list[Suggestion] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    suspicion: tuple[str, ...] = ()



def state_error(s: Suggestion, target: str) -> IllegalTransition:
    """The typed error for moving `s` to `target` from the state it is in."""
    if s.state == "expired":
        return SuggestionExpired(f"suggestion #{s.id} expired at {s.expires_at}", s.id, "expired", target)
    if s.state == "superseded":
        return SuggestionSuperseded(f"suggestion #{s.id} was replaced by #{s.superseded_by}", s.id, s.superseded_by)
    if target in ("approved", "rejected", "superseded", "queued") and s.state != "pending":
        who = f" by {s.decided_by}" if s.decided_by else ""
        return AlreadyDecided(f"suggestion #{s.id} is already {s.state}{who}", s.id, s.state, target)
    return IllegalTransition(f"suggestion #{s.id} cannot go from {s.state} to {target}", s.id, s.state, target)


class ReviewQueue:
    """Creates suggestions from guard decisions and moves them through their states."""

    def __init__(self, store: Store, audit: AuditLog, clock: Clock, config: PolicyConfig, *,
                 guard: PolicyGuard) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self.config = config
        self.guard = guard
        self._person = People(config.people)  # one person, one approval, whichever door they came through

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _tx(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self._store.begin() as own:
                yield own

    @staticmethod
    def _lock(conn: Connection, suggestion_id: int | None = None) -> None:
        """Take the write lock before the first read of a decision.

        SQLite runs a transaction's SELECTs before its first write without any lock, so two
        deciders could both read the same audit-chain head (AuditLog appends head + 1: one of them
        then fails on the unique sequence number) or check an audit record while another writer
        extends the chain. A write statement first, even one that changes no row, takes SQLite's
        write lock for the rest of the transaction (and locks the row on PostgreSQL), so what is
        read afterwards cannot change until commit. Without a suggestion there is no row to lock on
        PostgreSQL, so the audit chain's head (which every audited change locks anyway, so taking it
        first orders no lock differently) serialises reviews across the cluster.
        """
        if suggestion_id is None:
            lock_chain(conn)
            return
        conn.execute(update(suggestions).where(suggestions.c.id == (suggestion_id or -1))
                     .values(version=suggestions.c.version))

    def _now(self) -> datetime:
        return self._clock()

    @staticmethod
    def _known_id(suggestion_id: int) -> None:
        """Refuse an id no column can hold before it reaches the database (which would overflow)."""
        if not 0 < suggestion_id <= MAX_ID:
            raise SuggestionNotFound(f"no suggestion #{suggestion_id}", None)

    def _as_seen(self, s: Suggestion) -> Suggestion:
        """Read-only, a suggestion past its time shows as expired: the sweeper cannot record it here."""
        if (self._store.read_only and s.state in ("pending", "approved")
                and self._now().timestamp() >= s.expires_ts):
            return dataclasses.replace(s, state="expired")
        return s

    def _load(self, conn: Connection, suggestion_id: int) -> Suggestion:
        s = load_suggestion(conn, suggestion_id)
        if s is None:
            raise SuggestionNotFound(f"no suggestion #{suggestion_id}", suggestion_id)
        return s

    def _move(self, conn: Connection, s: Suggestion, to: str, actor: str, *, decided: bool = True,
              reason: str | None = None, extra: Mapping[str, Any] | None = None,
              audit_data: Mapping[str, Any] | None = None) -> None:
        """Conditionally move `s` to `to` and audit it; raises _LostRace when someone moved it first."""
        if to != s.state and to not in TRANSITIONS[s.state]:
            raise state_error(s, to)
        values: dict[str, Any] = {"state": to, "version": s.version + 1, "updated_at": self._now().isoformat()}
        if decided:
            values["decided_by"] = actor
        if reason is not None:
            values["reason"] = reason
        values.update(extra or {})
        # The WHERE on state and version is the race guard: between our read and this write
        # another approver, the sweeper or the runner may have moved the row; then nothing
        # matches, rowcount is 0, and the caller starts over from a fresh read.
        result = conn.execute(update(suggestions).where(
            suggestions.c.id == s.id, suggestions.c.state == s.state, suggestions.c.version == s.version,
        ).values(**values))
        if result.rowcount != 1:
            raise _LostRace()
        action = "suggestion.transition" if to != s.state else "suggestion.update"
        data = {"from": s.state, "to": to, "reason": reason, **(audit_data or {})}
        self._audit.append(actor, action, f"suggestion:{s.id}", data, conn=conn)

    def _retrying(self, attempt: Any) -> Any:
        for _ in range(_RETRIES):
            try:
                return attempt()
            except _LostRace:
                continue
        raise ConcurrentUpdate("the suggestion kept changing while this decision was being recorded; try again")

    def _refused(self, actor: str, what: str, s: Suggestion | None, suggestion_id: int,
                 exc: ReviewError) -> None:
        """Audit a refused attempt in its own transaction (the caller re-raises)."""
        with self._store.begin() as c:
            self._lock(c, suggestion_id)
            self._audit.append(actor, f"suggestion.{what}_refused", f"suggestion:{suggestion_id}", {
                "error": type(exc).__name__, "message": str(exc), "state": s.state if s else None,
                "reason": getattr(exc, "reason", None),
            }, conn=c)

    # ------------------------------------------------------------------ creation

    def review(self, incident: Incident, verdict: TriageVerdict, *, actor: str,
               conn: Connection | None = None) -> ReviewOutcome:
        """Guard a verdict's actions and submit them: the one call ingest makes per triaged incident."""
        with self._tx(conn) as c:
            self._lock(c)  # the rate-limit counts and duplicate checks below must not race
            decisions = self.guard.check(incident, verdict, conn=c)
            return self.submit(incident.id, decisions, actor=actor, conn=c)

    def submit(self, incident_id: int | None, decisions: Sequence[GuardDecision], *, actor: str,
               conn: Connection | None = None) -> ReviewOutcome:
        """Audit every decision; create a pending suggestion for each allowed, new one."""
        subject = f"incident:{incident_id}" if incident_id is not None else "incident:-"
        created: list[Suggestion] = []
        duplicates: list[int] = []
        with self._tx(conn) as c:
            self._lock(c)
            for d in decisions:
                data = d.as_audit()
                if not d.allowed:
                    self._audit.append(actor, "policy.refuse", subject, data, conn=c)
                    continue
                assert d.params_sha256 is not None
                dup = find_open_duplicate(c, incident_id, d.playbook_id, d.params_sha256)
                if dup is not None:
                    # Every flush re-triages a growing incident; the same action stays one suggestion.
                    self._audit.append(actor, "policy.allow", subject, {**data, "duplicate_of": dup}, conn=c)
                    duplicates.append(dup)
                    continue
                self._audit.append(actor, "policy.allow", subject, data, conn=c)
                s = self.create(d, incident_id, requester=self.config.system_identity, conn=c)
                if d.auto_run:
                    self._approve_in(c, s, AUTO_APPROVER, "supervised autonomy: low-risk playbook", auto=True)
                    s = self._load(c, s.id)
                created.append(s)
            reasons = suspicion_reasons(decisions)
            if reasons:
                self._audit.append(actor, "incident.suspicion", subject, {
                    "reasons": list(reasons), "signal": "model recommended refused action(s); "
                    "the incident's telemetry may carry injected instructions"}, conn=c)
                log.warning("incident %s: model recommended refused action(s): %s", incident_id,
                            ascii(", ".join(reasons)))  # model text: never raw escapes in the journal
        return ReviewOutcome(list(decisions), created, duplicates, reasons)

    def create(self, decision: GuardDecision, incident_id: int | None, *, requester: str,
               origin: str = "guard", supersedes: int | None = None, justification: str | None = None,
               conn: Connection | None = None) -> Suggestion:
        """Store one allowed decision as a pending suggestion (audited); refused decisions raise."""
        if not decision.allowed or decision.content_hash is None or decision.params_sha256 is None:
            raise ParametersRefused(f"the guard refused this action: {decision.reason}", None, decision.reason or "")
        now = self._now()
        expires = now + timedelta(seconds=self.config.suggestion_ttl_s)
        params_json = canonical(decision.parameters)
        required = self.config.approvers_for(decision.risk or "high")
        why = decision.action.justification if justification is None else justification
        with self._tx(conn) as c:
            key = c.execute(suggestions.insert().values(
                incident_id=incident_id, playbook_id=decision.playbook_id,
                playbook_version=decision.playbook_version or 0, playbook_hash=decision.content_hash,
                risk=decision.risk or "high", params_json=params_json, params_sha256=decision.params_sha256,
                source=decision.source, origin=origin, requester=requester, justification=why,
                flags_json=json.dumps(list(decision.flags)), state="pending", version=1,
                approvals_required=required, created_at=now.isoformat(), created_ts=now.timestamp(),
                expires_at=expires.isoformat(), expires_ts=expires.timestamp(), updated_at=now.isoformat(),
                supersedes=supersedes,
            )).inserted_primary_key
            assert key is not None
            sid = int(key[0])
            record = self._audit.append(requester, "suggestion.create", f"suggestion:{sid}", {
                "incident": incident_id, "playbook": decision.playbook_id, "playbook_hash": decision.content_hash,
                "version": decision.playbook_version, "risk": decision.risk, "parameters": decision.parameters,
                "params_sha256": decision.params_sha256, "source": decision.source, "origin": origin,
                "requester": requester, "approvals_required": required, "expires_at": expires.isoformat(),
                "supersedes": supersedes, "flags": list(decision.flags),
            }, conn=c)
            c.execute(update(suggestions).where(suggestions.c.id == sid).values(audit_seq=record.seq))
            return self._load(c, sid)

    # ------------------------------------------------------------------ reading

    def get(self, suggestion_id: int) -> Suggestion:
        """One suggestion with its approvals; raises SuggestionNotFound."""
        self._known_id(suggestion_id)
        with self._store.engine.connect() as c:
            return self._as_seen(self._load(c, suggestion_id))

    def list(self, state: str | None = None, incident_id: int | None = None,
             limit: int = 500) -> builtins.list[Suggestion]:
        """Suggestions with their approvals, newest first, optionally in one state or for one incident."""
        if state is not None and state not in STATES:
            raise ValueError(f"unknown state {state!r}; known: {', '.join(STATES)}")
        t = suggestions
        q = select(t).order_by(t.c.id.desc()).limit(limit)
        if state is not None and self._store.read_only and state in ("pending", "approved", "expired"):
            # The states as `_as_seen` shows them: a due one is expired, though the row still says otherwise.
            now = self._now().timestamp()
            due = and_(t.c.state.in_(("pending", "approved")), t.c.expires_ts <= now)
            q = q.where(or_(t.c.state == "expired", due) if state == "expired"
                        else and_(t.c.state == state, t.c.expires_ts > now))
        elif state is not None:
            q = q.where(t.c.state == state)
        if incident_id is not None:
            q = q.where(t.c.incident_id == incident_id)
        with self._store.engine.connect() as c:
            rows = c.execute(q).all()
            approvals = load_approvals_for(c, [row.id for row in rows])
        return [self._as_seen(suggestion_from_row(row, approvals.get(row.id, ()))) for row in rows]

    # ------------------------------------------------------------------ decisions

    def approve(self, suggestion_id: int, approver: str, comment: str = "") -> Suggestion:
        """Record one approval; the suggestion becomes `approved` once enough distinct people approved."""
        def attempt() -> Suggestion:
            return self._decide(suggestion_id, approver, "approve",
                                lambda c, s: self._approve_in(c, s, approver, comment))
        result: Suggestion = self._retrying(attempt)
        return result

    def reject(self, suggestion_id: int, actor: str, reason: str) -> Suggestion:
        """Reject a pending (or approved, not yet queued) suggestion; a reason is required."""
        if not reason.strip():
            raise ValueError("a rejection needs a reason")

        def act(c: Connection, s: Suggestion) -> None:
            self._require(s, "rejected")
            self._move(c, s, "rejected", actor, reason=reason[:2000])

        result: Suggestion = self._retrying(lambda: self._decide(suggestion_id, actor, "reject", act))
        return result

    def edit(self, suggestion_id: int, editor: str, changes: Mapping[str, object], comment: str = "") -> Suggestion:
        """Replace a pending suggestion with one whose parameters differ; returns the new suggestion."""
        box: dict[str, Suggestion] = {}

        def act(c: Connection, s: Suggestion) -> None:
            self._require(s, "superseded")
            pinned = self.config.defaults.get(s.playbook_id, {})
            params = {k: v for k, v in s.parameters.items() if k not in pinned}
            params.update(changes)
            action = RecommendedAction(playbook=s.playbook_id, parameters=params,
                                       justification=s.justification)
            decision = self.guard.check_action(action, "operator", conn=c, rate_limit=False)
            if not decision.allowed:
                raise ParametersRefused(f"edited parameters refused: {decision.reason} ({decision.detail})",
                                        s.id, decision.reason or "")
            if decision.params_sha256 == s.params_sha256 and decision.content_hash == s.playbook_hash:
                raise ParametersRefused("the edit changes nothing", s.id, "no_change")
            new = self.create(decision, s.incident_id, requester=editor, origin="edit", supersedes=s.id,
                              justification=s.justification, conn=c)
            # Flags (suspicion) follow the action: an edit does not launder a tainted answer.
            if s.flags:
                c.execute(update(suggestions).where(suggestions.c.id == new.id).values(
                    flags_json=json.dumps(sorted(set(s.flags) | set(new.flags)))))
            self._move(c, s, "superseded", editor, reason=comment[:2000] or "parameters edited",
                       extra={"superseded_by": new.id},
                       audit_data={"superseded_by": new.id, "changes": dict(changes)})
            box["new"] = self._load(c, new.id)

        self._retrying(lambda: self._decide(suggestion_id, editor, "edit", act))
        return box["new"]

    def claim(self, suggestion_id: int, actor: str,
              then: Callable[[Connection, Suggestion], None] | None = None) -> Suggestion:
        """Consume the approval (approved → queued) after checking its binding once more; single use.

        `then` runs in the same transaction, on the queued suggestion: the runner records its run
        there, so that an approval is never consumed without a run to show for it (or the reverse).
        """
        def act(c: Connection, s: Suggestion) -> None:
            self._require(s, "queued")
            playbook = self._bound_playbook(s)
            self._check_binding(c, s, playbook)
            self._check_approvals(c, s, playbook)
            self._move(c, s, "queued", actor, decided=False,
                       audit_data={"playbook_hash": s.playbook_hash, "params_sha256": s.params_sha256})
            if then is not None:
                then(c, self._load(c, s.id))

        result: Suggestion = self._retrying(lambda: self._decide(suggestion_id, actor, "claim", act))
        return result

    def transition(self, suggestion_id: int, to: str, actor: str, detail: str | None = None) -> Suggestion:
        """A runner's move: queued → running → succeeded | failed | rolled_back (or queued → failed)."""
        if to not in STATES:
            raise ValueError(f"unknown state {to!r}")
        if to in _GUARDED_TARGETS:
            raise IllegalTransition(f"use {_GUARDED_TARGETS[to]}() to move a suggestion to {to}",
                                    suggestion_id, None, to)

        def act(c: Connection, s: Suggestion) -> None:
            if to not in TRANSITIONS[s.state]:
                raise state_error(s, to)
            self._move(c, s, to, actor, decided=False, reason=detail[:2000] if detail else None)

        result: Suggestion = self._retrying(lambda: self._decide(suggestion_id, actor, "transition", act))
        return result

    def transition_in(self, conn: Connection, suggestion_id: int, to: str, actor: str,
                      detail: str | None = None) -> None:
        """A runner's move inside the caller's transaction (the run's own row changes with it)."""
        if to in _GUARDED_TARGETS or to not in STATES:
            raise IllegalTransition(f"a runner cannot move a suggestion to {to}", suggestion_id, None, to)
        s = self._load(conn, suggestion_id)
        if to not in TRANSITIONS[s.state]:
            raise state_error(s, to)
        self._move(conn, s, to, actor, decided=False, reason=detail[:2000] if detail else None)

    def expire_due(self, actor: str = "watchstander:sweeper") -> builtins.list[int]:
        """The TTL sweeper: pending and approved-but-unclaimed suggestions past their time expire.

        On a read-only store nothing is recorded; `get` and `list` show due suggestions as expired.
        """
        if self._store.read_only:
            return []
        now = self._now()
        t = suggestions
        with self._store.engine.connect() as c:
            due = [int(r.id) for r in c.execute(select(t.c.id).where(
                t.c.state.in_(("pending", "approved")), t.c.expires_ts <= now.timestamp()))]
        expired: builtins.list[int] = []
        for sid in due:
            try:
                with self._store.begin() as c:
                    self._lock(c, sid)
                    s = self._load(c, sid)
                    if s.state in ("pending", "approved") and s.expires_ts <= now.timestamp():
                        self._move(c, s, "expired", actor, reason="ttl")
                        expired.append(sid)
            except _LostRace:
                continue  # approved, rejected or claimed a moment ago: theirs stands
        return expired

    # ------------------------------------------------------------------ checks

    def _decide(self, suggestion_id: int, actor: str, what: str, act: Any) -> Suggestion:
        """Run `act` on a fresh read in one transaction; refusals are audited, expiry is recorded.

        `act` raises ReviewError only before its first write: the transaction is committed after a
        refusal so that a discovered expiry stays recorded, so a write before a refusal would stay too.
        """
        self._known_id(suggestion_id)
        error: ReviewError | None = None
        s: Suggestion | None = None
        with self._store.begin() as c:
            self._lock(c, suggestion_id)
            s = self._load(c, suggestion_id)
            try:
                if s.state in ("pending", "approved") and self._now().timestamp() >= s.expires_ts:
                    # Expired but not yet swept: record it now, then refuse.
                    self._move(c, s, "expired", "watchstander:sweeper", reason="ttl")
                    s = self._load(c, suggestion_id)
                    raise state_error(s, "approved" if what == "approve" else what)
                act(c, s)
            except ReviewError as exc:
                error = exc
        if error is not None:
            self._refused(actor, what, s, suggestion_id, error)
            raise error
        return self.get(suggestion_id)

    def _require(self, s: Suggestion, target: str) -> None:
        if target not in TRANSITIONS[s.state]:
            raise state_error(s, target)

    def _approve_in(self, c: Connection, s: Suggestion, approver: str, comment: str, *, auto: bool = False) -> None:
        self._require(s, "approved")
        # By person (the uid), not by string: in-process, one uid could otherwise approve under two names.
        if self._person(approver) == self._person(s.requester):
            raise RequesterCannotApprove(f"{approver} requested suggestion #{s.id} and cannot approve it", s.id)
        if self._person(approver) in {self._person(a.approver) for a in s.approvals}:
            raise DuplicateApprover(f"{approver} already approved suggestion #{s.id}; "
                                    "another person must give the next approval", s.id)
        playbook = self._bound_playbook(s)
        self._check_binding(c, s, playbook)
        required = max(s.approvals_required, self.config.approvers_for(playbook.risk))
        count = len(s.approvals) + 1
        to = "approved" if count >= required else "pending"
        try:
            self._audit.append(approver, "suggestion.approve", f"suggestion:{s.id}", {
                "approver": approver, "count": count, "required": required, "auto": auto,
                "playbook_hash": s.playbook_hash, "params_sha256": s.params_sha256, "comment": comment[:2000],
            }, conn=c)
            c.execute(suggestion_approvals.insert().values(
                suggestion_id=s.id, approver=approver, approved_at=self._now().isoformat(),
                playbook_hash=s.playbook_hash, params_sha256=s.params_sha256, comment=comment[:2000]))
        except IntegrityError:
            raise _LostRace() from None  # the same person approving twice at once; re-read decides
        self._move(c, s, to, approver, decided=(to == "approved"),
                   audit_data={"approvals": count, "required": required})

    def _bound_playbook(self, s: Suggestion) -> Playbook:
        """The catalogue's playbook, if it still is exactly the approved definition the suggestion bound."""
        try:
            playbook = self.guard.catalogue.get(s.playbook_id)
        except UnknownPlaybookError:
            raise PlaybookChanged(f"playbook {s.playbook_id!r} is no longer in the catalogue", s.id) from None
        if playbook.content_hash != s.playbook_hash:
            raise PlaybookChanged(
                f"playbook {s.playbook_id!r} changed since suggestion #{s.id} was made (sha256 "
                f"{s.playbook_hash[:12]} then, {playbook.content_hash[:12]} now); suggest it again", s.id)
        if not self.guard.approvals.is_approved(playbook):
            raise PlaybookChanged(f"playbook {s.playbook_id!r} sha256 {s.playbook_hash[:12]} is no longer "
                                  f"approved ({self.guard.approvals.status(playbook)})", s.id)
        return playbook

    def _check_binding(self, c: Connection, s: Suggestion, playbook: Playbook) -> None:
        """Stored parameters = their hash = the hash the audit log recorded, and they still pass the guard."""
        try:
            stored = json.loads(s.params_json)
        except ValueError:
            stored = None
        if not isinstance(stored, dict) or params_digest(stored) != s.params_sha256:
            raise ParametersTampered(f"suggestion #{s.id}: stored parameters do not match their hash", s.id)
        created = self._audit_record(c, s.audit_seq, "suggestion.create", f"suggestion:{s.id}")
        if created is None or any(created.get(k) != v for k, v in (
                ("params_sha256", s.params_sha256), ("playbook_hash", s.playbook_hash),
                ("playbook", s.playbook_id), ("requester", s.requester), ("expires_at", s.expires_at))):
            raise ParametersTampered(f"suggestion #{s.id} no longer matches the audit record of its creation", s.id)
        if abs(datetime.fromisoformat(s.expires_at).timestamp() - s.expires_ts) > 0.001:
            raise ParametersTampered(f"suggestion #{s.id}: its expiry time was changed", s.id)
        if s.approvals_required < int(created.get("approvals_required") or 2):
            raise ParametersTampered(f"suggestion #{s.id}: required approvers were lowered", s.id)
        checked = self.guard.check_parameters(playbook, stored)
        if isinstance(checked, tuple):
            raise ParametersRefused(f"suggestion #{s.id}: parameters no longer pass the guard: {checked[0]} "
                                    f"({checked[1]})", s.id, checked[0])
        if checked != stored:
            raise ParametersTampered(f"suggestion #{s.id}: parameters do not normalise to themselves", s.id)

    def _check_approvals(self, c: Connection, s: Suggestion, playbook: Playbook) -> None:
        """Before a run: enough distinct approvers, none the requester, each bound to these hashes."""
        required = max(s.approvals_required, self.config.approvers_for(playbook.risk))
        people = {self._person(a.approver) for a in s.approvals}
        if (len(people) < required or self._person(s.requester) in people or any(
                a.playbook_hash != s.playbook_hash or a.params_sha256 != s.params_sha256 for a in s.approvals)):
            raise ParametersTampered(f"suggestion #{s.id}: its approvals do not bind this playbook and these "
                                     f"parameters with {required} distinct approver(s)", s.id)
        t = audit_log
        # An approval counts only if its audit record is vouched for by a signed checkpoint: a row
        # someone wrote into the database (and re-chained) has none (docs/security-audit.md).
        rows = c.execute(select(t.c.seq, t.c.data).where(
            t.c.subject == f"suggestion:{s.id}", t.c.action == "suggestion.approve")).all()
        unsealed = [r.seq for r in rows if not self._audit.is_sealed(r.seq, conn=c)]
        audited = {json.loads(r.data).get("approver") for r in rows if r.seq not in unsealed}
        if not {a.approver for a in s.approvals} <= audited:
            why = "; ".join(filter(None, (self._audit.why_unsealed(seq, conn=c) for seq in unsealed)))
            raise ParametersTampered(f"suggestion #{s.id}: an approval is missing from the audit log or not sealed"
                                     + (f" ({why})" if why else ""), s.id)

    def _audit_record(self, c: Connection, seq: int | None, action: str, subject: str) -> dict[str, Any] | None:
        """The data of one audit record if it is intact and still linked to the chain, else None."""
        if seq is None:
            return None
        t = audit_log
        row = c.execute(select(t).where(t.c.seq == seq)).first()
        if row is None or row.action != action or row.subject != subject:
            return None
        if record_hash(row.seq, row.time, row.actor, row.action, row.subject, row.data, row.prev_hash) != row.hash:
            return None
        nxt = c.execute(select(t.c.prev_hash).where(t.c.seq == seq + 1)).scalar()
        if nxt is None:
            nxt = c.execute(select(audit_head.c.hash).where(audit_head.c.id == 1)).scalar()
        if nxt != row.hash:
            return None
        if not self._audit.is_sealed(seq, conn=c):
            return None
        data = json.loads(row.data)
        return data if isinstance(data, dict) else None
