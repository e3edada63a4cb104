"""The audit log: append-only records chained by SHA-256, so any edit, deletion or reordering shows.

Each record's hash covers its own fields and the previous record's hash. A separate head row
remembers the last sequence number and hash, so that truncating the newest records shows too.
The chain alone only proves consistency: anyone who can write the database can re-chain it.
With a sealer (`seal.py`), appends are vouched for by signed checkpoints: each node keeps its own
copy in a file outside the store and writes the same lines into `audit_checkpoints`, in the
appending transaction, so that every node sharing the store can check every other node's seals.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, Text, func, select

from ..clock import Clock, system_clock
from .engine import Component, Store, insert_new

GENESIS = "0" * 64
# The records a forger wants (an approval counted, a suggestion's target): each is sealed as it is
# written, so none can be slipped in between two checkpoints without the signing key.
SEALED_ACTIONS = frozenset({"suggestion.create", "suggestion.approve", "suggestion.transition",
                            "playbook.approve", "playbook.revoke"})

_meta = MetaData()
audit_log = Table(
    "audit_log", _meta,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("time", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
audit_head = Table(
    "audit_head", _meta,
    Column("id", Integer, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Version 2: every signer's checkpoints, one chain per key, the exact signed line kept as written.
# The columns beside `line` are for finding rows; readers trust only what the line's signature covers.
_checkpoints_meta = MetaData()
audit_checkpoints = Table(
    "audit_checkpoints", _checkpoints_meta,
    Column("key", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("head", String(64), nullable=False),
    Column("time", String(40), nullable=False),
    Column("prev", String(64), nullable=False),
    Column("unvouched", Text, nullable=False),
    Column("sig", String(200), nullable=False),
    Column("line", Text, nullable=False),
)


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


def _v2(conn: Connection) -> None:
    """Signed checkpoints in the store, so that nodes sharing it can check each other's seals."""
    _checkpoints_meta.create_all(conn)


SCHEMA = Component("audit", (_v1, _v2))


def lock_chain(conn: Connection) -> None:
    """Lock the chain's head until `conn`'s transaction ends: the one lock every audited change shares.

    A write before the read takes SQLite's write lock (a row lock on PostgreSQL), so two writers
    cannot both read the same head and then collide on the next sequence number. On PostgreSQL a
    missing head row (a new store) is first inserted as the empty chain, atomically, so that the
    first appenders have a row to queue on; SQLite's write lock needs no row.
    """
    if conn.dialect.name == "postgresql":
        insert_new(conn, audit_head, ("id",), {"id": 1, "seq": 0, "hash": GENESIS})
    conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=audit_head.c.seq))


def canonical(data: Any) -> str:
    """Canonical JSON: sorted keys, no insignificant white space, non-ASCII kept."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(seq: int, time: str, actor: str, action: str, subject: str, data: str, prev: str) -> str:
    """The SHA-256 that chains one record to the one before it."""
    body = canonical([seq, time, actor, action, subject, data, prev])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    """One record as stored."""

    seq: int
    time: str
    actor: str
    action: str
    subject: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of walking the chain: ok, or the first broken record and why."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str | None = None


class Sealer(Protocol):
    """What AuditLog needs from a checkpoint signer (implemented by `seal.Sealer`)."""

    def stage(self, conn: Connection, record: AuditRecord) -> None:
        """Prepare a checkpoint for `record`, written when `conn`'s transaction commits."""

    def is_sealed(self, conn: Connection, seq: int) -> bool:
        """Whether record `seq` is covered by a valid checkpoint and matches it."""

    def why_unsealed(self, conn: Connection, seq: int) -> str:
        """Why record `seq` is not sealed, for a person (which keys cover it, and that they are not trusted)."""


class AuditLog:
    """Appends to and verifies the hash-chained audit log in the store."""

    def __init__(self, store: Store, clock: Clock = system_clock, sealer: Sealer | None = None) -> None:
        self._store = store
        self._clock = clock
        self.sealer = sealer

    def append(self, actor: str, action: str, subject: str, data: dict[str, Any] | None = None,
               conn: Connection | None = None) -> AuditRecord:
        """Append one record; pass `conn` to make it part of the caller's transaction."""
        if conn is not None:
            return self._append(conn, actor, action, subject, data or {})
        with self._store.begin() as own:
            return self._append(own, actor, action, subject, data or {})

    def _append(self, conn: Connection, actor: str, action: str, subject: str,
                data: dict[str, Any]) -> AuditRecord:
        lock_chain(conn)
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
        seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS)
        when = self._clock().isoformat()
        body = canonical(data)
        digest = record_hash(seq, when, actor, action, subject, body, prev)
        conn.execute(audit_log.insert().values(seq=seq, time=when, actor=actor, action=action,
                                               subject=subject, data=body, prev_hash=prev, hash=digest))
        if head:
            conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=digest))
        else:
            conn.execute(audit_head.insert().values(id=1, seq=seq, hash=digest))
        record = AuditRecord(seq, when, actor, action, subject, data, prev, digest)
        if self.sealer is not None:
            self.sealer.stage(conn, record)
        return record

    def is_sealed(self, seq: int, conn: Connection | None = None) -> bool:
        """Whether record `seq` is vouched for by a signed checkpoint (always True without a sealer)."""
        if self.sealer is None:
            return True
        if conn is not None:
            return self.sealer.is_sealed(conn, seq)
        with self._store.engine.connect() as own:
            return self.sealer.is_sealed(own, seq)

    def why_unsealed(self, seq: int, conn: Connection | None = None) -> str:
        """Why record `seq` is not sealed (an empty string without a sealer)."""
        if self.sealer is None:
            return ""
        if conn is not None:
            return self.sealer.why_unsealed(conn, seq)
        with self._store.engine.connect() as own:
            return self.sealer.why_unsealed(own, seq)

    def records(self, since: datetime | None = None) -> Iterator[AuditRecord]:
        """Every record in sequence order (optionally from `since` on)."""
        with self._store.engine.connect() as conn:
            q = select(audit_log).order_by(audit_log.c.seq)
            if since is not None:
                q = q.where(audit_log.c.time >= since.isoformat())
            for row in conn.execute(q):
                yield AuditRecord(row.seq, row.time, row.actor, row.action, row.subject,
                                  json.loads(row.data), row.prev_hash, row.hash)

    def count(self) -> int:
        """How many records the log holds."""
        with self._store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())

    def verify(self) -> VerifyResult:
        """Walk the whole chain; name the first record that was edited, deleted, inserted or moved."""
        expected_seq, prev = 1, GENESIS
        checked = 0
        with self._store.engine.connect() as conn:
            # Physical order (rowid) is what an attacker rewrites; sequence gaps and hash
            # mismatches in that order expose deletion and reordering.
            rows = conn.execute(select(audit_log).order_by(audit_log.c.seq))
            for row in rows:
                if row.seq != expected_seq:
                    return VerifyResult(False, checked, expected_seq,
                                        f"record {expected_seq} is missing (found {row.seq} next)")
                if row.prev_hash != prev:
                    return VerifyResult(False, checked, row.seq, "previous-hash link does not match")
                digest = record_hash(row.seq, row.time, row.actor, row.action, row.subject, row.data,
                                     row.prev_hash)
                if digest != row.hash:
                    return VerifyResult(False, checked, row.seq, "content does not match its hash")
                prev = row.hash
                expected_seq += 1
                checked += 1
            head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
        last = expected_seq - 1
        if head is None:
            if checked:
                return VerifyResult(False, checked, 1, "chain head is missing")
        elif head.seq != last or head.hash != prev:
            return VerifyResult(False, checked, last + 1 if head.seq > last else head.seq,
                                f"chain head says record {head.seq}, log ends at {last}")
        return VerifyResult(True, checked)
