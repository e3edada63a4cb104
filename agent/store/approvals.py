"""Playbook definition approvals (store component "playbooks").

A playbook may be suggested or run only while its exact content hash holds a current approval.
Approving a new hash for an id supersedes the approvals of that id's other hashes, so editing a
file disables it until someone approves the new content, and reverting it does not quietly
re-enable an old version. Every approval and revocation is audited in the same transaction.

A content is approved once as many distinct people as its risk requires have approved it (two
for high risk, like a high-risk run): the first approval is recorded as pending and the next
person's completes it. People are told apart by uid, so one account claiming other names in a
principal ("uid:0:root", "uid:0:alice") counts once.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Index, Integer, MetaData, String, Table, Text, inspect, select, text
from sqlalchemy.exc import IntegrityError

from watchstander.playbooks import NotApprovedError, Playbook

from ..clock import Clock
from ..config.policy import MIN_APPROVERS
from ..errors import Exit, StoreError, WatchstanderError
from .audit import AuditLog
from .engine import Component, Store

_meta = MetaData()
approvals_table = Table(
    "playbook_approvals", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("playbook_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("source", String(1000), nullable=False),
    Column("approver", String(200), nullable=False),
    Column("approved_at", String(40), nullable=False),
    Column("comment", Text, nullable=False),
    Column("revoked_at", String(40), nullable=True),
    Column("revoked_by", String(200), nullable=True),
    Column("revoke_reason", Text, nullable=True),
    # Version 2: distinct approvers the content needed when it was first approved (history only:
    # whether it is approved is decided from the playbook's risk at the time of the check).
    Column("approvers_required", Integer, nullable=False, server_default=text("1")),
)
# At most one current approval per exact content; a second approver racing the first loses here.
Index("ux_playbook_approvals_current", approvals_table.c.playbook_id, approvals_table.c.content_hash,
      unique=True, sqlite_where=approvals_table.c.revoked_at.is_(None),
      postgresql_where=approvals_table.c.revoked_at.is_(None))
Index("ix_playbook_approvals_id", approvals_table.c.playbook_id)


_signers_meta = MetaData()
signers_table = Table(
    "playbook_approval_signers", _signers_meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("approval_id", Integer, nullable=False),
    Column("approver", String(200), nullable=False),  # the principal as given
    Column("person", String(200), nullable=False),    # who that is: "uid:N" for uid principals
    Column("approved_at", String(40), nullable=False),
    Column("comment", Text, nullable=False),
)
# One person counts once per approval, also when two of their sessions race.
Index("ux_playbook_approval_signers_person", signers_table.c.approval_id, signers_table.c.person, unique=True)


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


def _v2(conn: Connection) -> None:
    """Approvers as rows of their own; every existing approval keeps its one approver."""
    columns = {c["name"] for c in inspect(conn).get_columns("playbook_approvals")}
    if "approvers_required" not in columns:  # a store made by version 1's table
        conn.execute(text("ALTER TABLE playbook_approvals ADD COLUMN approvers_required INTEGER NOT NULL DEFAULT 1"))
    _signers_meta.create_all(conn)
    t = approvals_table
    rows = conn.execute(select(t.c.id, t.c.approver, t.c.approved_at, t.c.comment)).all()
    if rows:
        conn.execute(signers_table.insert(), [
            {"approval_id": r.id, "approver": r.approver, "person": person_of(r.approver),
             "approved_at": r.approved_at, "comment": r.comment} for r in rows])


SCHEMA = Component("playbooks", (_v1, _v2))

_UID_PRINCIPAL = re.compile(r"uid:(\d+)(?::.*)?", re.DOTALL | re.ASCII)


def person_of(principal: str) -> str:
    """Who a principal stands for: "uid:N" for "uid:N[:name]" (the name is not evidence), else itself."""
    match = _UID_PRINCIPAL.fullmatch(principal)
    return f"uid:{int(match.group(1))}" if match else principal


def definition_approvers(risk: str) -> int:
    """Distinct people who must approve a playbook definition of this risk (2 for high or unknown)."""
    return MIN_APPROVERS.get(risk, 2)


class DefinitionApprovalRefused(WatchstanderError):
    """This person may not approve this definition (they already approved this content)."""

    code = "definition_approval_refused"
    exit_status = Exit.APPROVAL_REFUSED

    def __init__(self, message: str, playbook_id: str | None = None) -> None:
        super().__init__(message)
        self.playbook_id = playbook_id


class ApprovalStatus(enum.StrEnum):
    """Where a loaded playbook stands."""

    APPROVED = "approved"
    PENDING = "awaiting another approver"
    CHANGED = "changed since approval"
    REVOKED = "revoked"
    NEVER = "never approved"


@dataclass(frozen=True)
class Approval:
    """One approval of one exact playbook content."""

    id: int
    playbook_id: str
    version: int
    content_hash: str
    source: str
    approver: str
    approved_at: str
    comment: str
    revoked_at: str | None
    revoked_by: str | None
    revoke_reason: str | None
    approvers: tuple[str, ...] = ()  # every distinct person who approved this content, in order
    required: int = 1                # how many it needs

    @property
    def current(self) -> bool:
        """Whether this approval has not been revoked or superseded (it may still await approvers)."""
        return self.revoked_at is None

    @property
    def complete(self) -> bool:
        """Whether enough distinct people approved this content."""
        return len({person_of(a) for a in self.approvers}) >= self.required


class ApprovalStore:
    """Records, checks and revokes playbook definition approvals."""

    def __init__(self, store: Store, audit: AuditLog, clock: Clock,
                 approvers_for: Callable[[str], int] = definition_approvers) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._approvers_for = approvers_for

    def required(self, playbook: Playbook) -> int:
        """Distinct approvers this playbook's content needs."""
        return max(definition_approvers(playbook.risk), self._approvers_for(playbook.risk))

    def approve(self, playbook: Playbook, approver: str, comment: str = "") -> Approval:
        """Record `approver`'s approval of this exact content; returns the approval, complete or pending.

        The first approval of a content supersedes the other contents of the id. An approval that
        is already complete is returned as it is; a person who already approved a pending one is
        refused (DefinitionApprovalRefused), whatever name their uid claims.
        """
        for _ in range(3):
            try:
                return self._approve_once(playbook, approver, comment)
            except IntegrityError:
                continue  # another approval of the same content won a race; decide on a fresh read
        raise StoreError(f"approval of playbook {playbook.id!r} kept losing races; try again")

    def approve_with(self, playbook: Playbook, approvers: Sequence[str], comment: str = "") -> Approval:
        """Approve as each of several distinct people in turn, until complete (setups such as the demo)."""
        people = [person_of(a) for a in approvers]
        if len(set(people)) != len(people):
            raise DefinitionApprovalRefused(f"{', '.join(approvers)} are not distinct people", playbook.id)
        approval: Approval | None = None
        for approver in approvers:
            approval = self.approve(playbook, approver, comment)
            if approval.complete:
                break
        if approval is None:
            raise DefinitionApprovalRefused("approving needs at least one approver", playbook.id)
        return approval

    def _approve_once(self, playbook: Playbook, approver: str, comment: str) -> Approval:
        now = self._clock().isoformat()
        person = person_of(approver)
        required = self.required(playbook)
        t, st = approvals_table, signers_table
        with self._store.begin() as conn:
            row = conn.execute(select(t).where(
                t.c.playbook_id == playbook.id, t.c.content_hash == playbook.content_hash,
                t.c.revoked_at.is_(None))).first()
            superseded: list[int] = []
            if row is None:
                superseded = [r.id for r in conn.execute(
                    select(t.c.id).where(t.c.playbook_id == playbook.id, t.c.revoked_at.is_(None)))]
                if superseded:
                    conn.execute(t.update().where(t.c.id.in_(superseded)).values(
                        revoked_at=now, revoked_by=approver,
                        revoke_reason=f"superseded by sha256 {playbook.content_hash}"))
                key = conn.execute(t.insert().values(
                    playbook_id=playbook.id, version=playbook.version, content_hash=playbook.content_hash,
                    source=playbook.source, approver=approver, approved_at=now, comment=comment,
                    approvers_required=required,
                )).inserted_primary_key
                if key is None:
                    raise StoreError("the store did not return the new approval's id")
                approval_id = int(key[0])
                signed: list[str] = []
            else:
                approval_id = int(row.id)
                signed = [r.approver for r in conn.execute(
                    select(st.c.approver).where(st.c.approval_id == approval_id).order_by(st.c.id))]
                if len({person_of(a) for a in signed}) >= required:
                    return self._load(conn, approval_id, required)
                if person in {person_of(a) for a in signed}:
                    raise DefinitionApprovalRefused(
                        f"{approver} already approved playbook {playbook.id} sha256 {playbook.content_hash[:12]}; "
                        f"another person must give the next approval ({len(signed)} of {required})", playbook.id)
            conn.execute(st.insert().values(approval_id=approval_id, approver=approver, person=person,
                                            approved_at=now, comment=comment))
            self._audit.append(approver, "playbook.approve", f"playbook:{playbook.id}", {
                "approval_id": approval_id, "content_hash": playbook.content_hash,
                "version": playbook.version, "source": playbook.source, "risk": playbook.risk,
                "comment": comment, "superseded": superseded, "count": len(signed) + 1, "required": required,
            }, conn=conn)
            return self._load(conn, approval_id, required)

    def _load(self, conn: Connection, approval_id: int, required: int | None = None) -> Approval:
        row = conn.execute(select(approvals_table).where(approvals_table.c.id == approval_id)).first()
        if row is None:
            raise StoreError(f"playbook approval #{approval_id} is missing")
        return _approval(row, _signers(conn, [approval_id]).get(approval_id, ()), required)

    def revoke(self, playbook_id: str, actor: str, reason: str = "",
               content_hash: str | None = None) -> list[Approval]:
        """Revoke the current approvals of an id (or of one content hash); returns those revoked."""
        t = approvals_table
        now = self._clock().isoformat()
        with self._store.begin() as conn:
            q = select(t).where(t.c.playbook_id == playbook_id, t.c.revoked_at.is_(None))
            if content_hash is not None:
                q = q.where(t.c.content_hash == content_hash)
            ids = [row.id for row in conn.execute(q)]
            if not ids:
                return []
            conn.execute(t.update().where(t.c.id.in_(ids)).values(
                revoked_at=now, revoked_by=actor, revoke_reason=reason or "revoked"))
            self._audit.append(actor, "playbook.revoke", f"playbook:{playbook_id}", {
                "approval_ids": ids, "content_hash": content_hash, "reason": reason,
            }, conn=conn)
            rows = conn.execute(select(t).where(t.c.id.in_(ids)).order_by(t.c.id)).all()
            signers = _signers(conn, ids)
        return [_approval(row, signers.get(row.id, ())) for row in rows]

    def current(self, playbook: Playbook) -> Approval | None:
        """The approval in force for this exact content (enough distinct approvers), if any."""
        approval = self._open(playbook)
        return approval if approval is not None and approval.complete else None

    def pending(self, playbook: Playbook) -> Approval | None:
        """The approval of this exact content that still awaits approvers, if any."""
        approval = self._open(playbook)
        return approval if approval is not None and not approval.complete else None

    def _open(self, playbook: Playbook) -> Approval | None:
        t = approvals_table
        with self._store.engine.connect() as conn:
            row = conn.execute(select(t).where(
                t.c.playbook_id == playbook.id, t.c.content_hash == playbook.content_hash,
                t.c.revoked_at.is_(None))).first()
            if row is None:
                return None
            return _approval(row, _signers(conn, [row.id]).get(row.id, ()), self.required(playbook))

    def is_approved(self, playbook: Playbook) -> bool:
        """Whether this exact content (id and SHA-256 of the file bytes) is approved by enough people."""
        return self.current(playbook) is not None

    def require_approved(self, playbook: Playbook) -> Approval:
        """The current approval; raises NotApprovedError naming the status otherwise."""
        approval = self.current(playbook)
        if approval is None:
            raise NotApprovedError(playbook.id, playbook.content_hash, self.status(playbook).value)
        return approval

    def status(self, playbook: Playbook) -> ApprovalStatus:
        """Approved, awaiting another approver, changed since approval, revoked, or never approved."""
        history = self.approvals(playbook.id)
        if not history:
            return ApprovalStatus.NEVER
        mine = [a for a in history if a.current and a.content_hash == playbook.content_hash]
        if mine:
            return ApprovalStatus.APPROVED if self.current(playbook) is not None else ApprovalStatus.PENDING
        if any(a.current for a in history) or all(a.content_hash != playbook.content_hash for a in history):
            return ApprovalStatus.CHANGED
        return ApprovalStatus.REVOKED

    def approvals(self, playbook_id: str) -> list[Approval]:
        """Every approval ever given for this id, newest first, with its approvers."""
        t = approvals_table
        with self._store.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.playbook_id == playbook_id).order_by(t.c.id.desc())).all()
            signers = _signers(conn, [row.id for row in rows])
        return [_approval(row, signers.get(row.id, ())) for row in rows]


def _signers(conn: Connection, approval_ids: list[int]) -> dict[int, tuple[str, ...]]:
    """The approvers of each approval, in the order they approved."""
    if not approval_ids:
        return {}
    st = signers_table
    out: dict[int, list[str]] = {}
    for row in conn.execute(select(st.c.approval_id, st.c.approver).where(
            st.c.approval_id.in_(approval_ids)).order_by(st.c.id)):
        out.setdefault(int(row.approval_id), []).append(row.approver)
    return {k: tuple(v) for k, v in out.items()}


def _approval(row: object, approvers: tuple[str, ...], required: int | None = None) -> Approval:
    fields = {name: getattr(row, name) for name in Approval.__dataclass_fields__
              if name not in ("approvers", "required")}
    stored = int(getattr(row, "approvers_required", 1) or 1)
    return Approval(**fields, approvers=approvers, required=max(stored, required or 1))
