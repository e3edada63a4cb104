"""Playbook definition approvals (store component "playbooks").

A playbook may be suggested or run only while its exact content hash holds a current approval.
Approving a new hash for an id supersedes the approvals of that id's other hashes, so editing a
file disables it until someone approves the new content, and reverting it does not quietly
re-enable an old version. Every approval and revocation is audited in the same transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Index, Integer, MetaData, String, Table, Text, select
from sqlalchemy.exc import IntegrityError

from watchstander.playbooks import NotApprovedError, Playbook

from ..clock import Clock
from ..errors import StoreError
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
)
# At most one current approval per exact content; a second approver racing the first loses here.
Index("ux_playbook_approvals_current", approvals_table.c.playbook_id, approvals_table.c.content_hash,
      unique=True, sqlite_where=approvals_table.c.revoked_at.is_(None),
      postgresql_where=approvals_table.c.revoked_at.is_(None))
Index("ix_playbook_approvals_id", approvals_table.c.playbook_id)


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


SCHEMA = Component("playbooks", (_v1,))


class ApprovalStatus(enum.StrEnum):
    """Where a loaded playbook stands."""

    APPROVED = "approved"
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

    @property
    def current(self) -> bool:
        """Whether this approval is still in force."""
        return self.revoked_at is None


class ApprovalStore:
    """Records, checks and revokes playbook definition approvals."""

    def __init__(self, store: Store, audit: AuditLog, clock: Clock) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock

    def approve(self, playbook: Playbook, approver: str, comment: str = "") -> Approval:
        """Approve this exact content (superseding other contents of the id); returns the current approval."""
        existing = self.current(playbook)
        if existing is not None:
            return existing
        now = self._clock().isoformat()
        t = approvals_table
        try:
            with self._store.begin() as conn:
                superseded = [row.id for row in conn.execute(
                    select(t.c.id).where(t.c.playbook_id == playbook.id, t.c.revoked_at.is_(None)))]
                if superseded:
                    conn.execute(t.update().where(t.c.id.in_(superseded)).values(
                        revoked_at=now, revoked_by=approver,
                        revoke_reason=f"superseded by sha256 {playbook.content_hash}"))
                key = conn.execute(t.insert().values(
                    playbook_id=playbook.id, version=playbook.version, content_hash=playbook.content_hash,
                    source=playbook.source, approver=approver, approved_at=now, comment=comment,
                )).inserted_primary_key
                if key is None:
                    raise StoreError("the store did not return the new approval's id")
                new_id = int(key[0])
                self._audit.append(approver, "playbook.approve", f"playbook:{playbook.id}", {
                    "approval_id": new_id, "content_hash": playbook.content_hash,
                    "version": playbook.version, "source": playbook.source, "risk": playbook.risk,
                    "comment": comment, "superseded": superseded,
                }, conn=conn)
        except IntegrityError:
            pass  # someone approved the same content a moment earlier; theirs is the record
        approval = self.current(playbook)
        if approval is None:
            raise StoreError(f"approval of playbook {playbook.id!r} was not recorded")
        return approval

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
        return [_approval(row) for row in rows]

    def current(self, playbook: Playbook) -> Approval | None:
        """The approval in force for this exact content, if any."""
        t = approvals_table
        with self._store.engine.connect() as conn:
            row = conn.execute(select(t).where(
                t.c.playbook_id == playbook.id, t.c.content_hash == playbook.content_hash,
                t.c.revoked_at.is_(None))).first()
        return _approval(row) if row is not None else None

    def is_approved(self, playbook: Playbook) -> bool:
        """Whether this exact content (id and SHA-256 of the file bytes) is approved."""
        return self.current(playbook) is not None

    def require_approved(self, playbook: Playbook) -> Approval:
        """The current approval; raises NotApprovedError naming the status otherwise."""
        approval = self.current(playbook)
        if approval is None:
            raise NotApprovedError(playbook.id, playbook.content_hash, self.status(playbook).value)
        return approval

    def status(self, playbook: Playbook) -> ApprovalStatus:
        """Approved, changed since approval, revoked, or never approved."""
        history = self.approvals(playbook.id)
        if not history:
            return ApprovalStatus.NEVER
        if any(a.current and a.content_hash == playbook.content_hash for a in history):
            return ApprovalStatus.APPROVED
        if any(a.current for a in history) or all(a.content_hash != playbook.content_hash for a in history):
            return ApprovalStatus.CHANGED
        return ApprovalStatus.REVOKED

    def approvals(self, playbook_id: str) -> list[Approval]:
        """Every approval ever given for this id, newest first."""
        t = approvals_table
        with self._store.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.playbook_id == playbook_id).order_by(t.c.id.desc())).all()
        return [_approval(row) for row in rows]


def _approval(row: object) -> Approval:
    return Approval(**{name: getattr(row, name) for name in Approval.__dataclass_fields__})
