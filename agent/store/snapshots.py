"""Snapshots of what SSH collection read from devices, and the approved baselines (component "snapshots").

A snapshot is one command's normalised output on one device: its text (bounded), SHA-256, and
when it was first and last seen. A collection that reads the same text as the device's latest
snapshot of that command only moves `last_seen`; a different text is a new row, so the table is
the history of changes, not of collections. A baseline names the snapshot an operator approved
(or, for a device's very first snapshot, the one taken automatically: `auto`); drift is measured
against it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Column, Connection, Float, Index, Integer, MetaData, String, Table, Text, select

from ..clock import Clock
from .audit import AuditLog
from .engine import Component, Store

_meta = MetaData()

snapshots = Table(
    "snapshots", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device", String(64), nullable=False),
    Column("command", String(200), nullable=False),
    Column("kind", String(16), nullable=False),                # config | arp
    Column("sha256", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("truncated", Boolean, nullable=False),
    Column("first_seen", String(40), nullable=False),
    Column("first_ts", Float, nullable=False),
    Column("last_seen", String(40), nullable=False),
    Column("last_ts", Float, nullable=False),
)
Index("ix_snapshots_device_command", snapshots.c.device, snapshots.c.command, snapshots.c.id)

baselines = Table(
    "snapshot_baselines", _meta,
    Column("device", String(64), primary_key=True),
    Column("command", String(200), primary_key=True),
    Column("snapshot_id", Integer, nullable=False),
    Column("approved_by", String(200), nullable=False),
    Column("approved_at", String(40), nullable=False),
    Column("auto", Boolean, nullable=False),
)


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


SCHEMA = Component("snapshots", (_v1,))


def digest(text: str) -> str:
    """The SHA-256 of a snapshot's text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """One distinct output of one command on one device."""

    id: int
    device: str
    command: str
    kind: str
    sha256: str
    text: str
    truncated: bool
    first_seen: str
    last_seen: str

    def as_dict(self, *, text: bool = True) -> dict[str, Any]:
        """JSON-ready form (the text left out unless asked for)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "text"}
        if text:
            out["text"] = self.text
        return out


@dataclass(frozen=True)
class Baseline:
    """The snapshot drift is measured against, and who approved it."""

    snapshot: Snapshot
    approved_by: str
    approved_at: str
    auto: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, without the text."""
        return {"snapshot_id": self.snapshot.id, "sha256": self.snapshot.sha256, "approved_by": self.approved_by,
                "approved_at": self.approved_at, "auto": self.auto}


@dataclass(frozen=True)
class Recorded:
    """What recording one collected output did."""

    snapshot: Snapshot
    new: bool                   # a text not seen as the latest one before
    baseline: Baseline | None   # the approved baseline after recording (config snapshots only)


def _snapshot(row: Any) -> Snapshot:
    return Snapshot(row.id, row.device, row.command, row.kind, row.sha256, row.text, bool(row.truncated),
                    row.first_seen, row.last_seen)


class SnapshotStore:
    """Snapshots and baselines in the store."""

    def __init__(self, store: Store, clock: Clock, audit: AuditLog | None = None) -> None:
        self._store = store
        self._clock = clock
        self._audit = audit

    def record(self, device: str, command: str, kind: str, text: str, *, truncated: bool = False,
               auto_baseline: bool = False, actor: str = "watchstander:collector") -> Recorded:
        """Store `text` unless it is the latest snapshot already (then only its last-seen time moves).

        `auto_baseline`: when the device has no baseline for this command yet, this snapshot
        becomes it, marked `auto` (and audited).
        """
        now = self._clock()
        when, ts = now.isoformat(), now.timestamp()
        sha = digest(text)
        with self._store.begin() as conn:
            latest = self._latest(conn, device, command)
            if latest is not None and latest.sha256 == sha:
                conn.execute(snapshots.update().where(snapshots.c.id == latest.id).values(last_seen=when, last_ts=ts))
                snap, new = Snapshot(**{**latest.__dict__, "last_seen": when}), False
            else:
                result = conn.execute(snapshots.insert().values(
                    device=device, command=command, kind=kind, sha256=sha, text=text, truncated=truncated,
                    first_seen=when, first_ts=ts, last_seen=when, last_ts=ts))
                key = result.inserted_primary_key
                assert key is not None
                snap = Snapshot(int(key[0]), device, command, kind, sha, text, truncated, when, when)
                new = True
            baseline = self._baseline(conn, device, command)
            if baseline is None and auto_baseline:
                baseline = self._approve(conn, snap, actor, auto=True)
        return Recorded(snap, new, baseline)

    def latest(self, device: str, command: str) -> Snapshot | None:
        """The newest snapshot of `command` on `device`."""
        with self._store.begin() as conn:
            return self._latest(conn, device, command)

    def baseline(self, device: str, command: str) -> Baseline | None:
        """The approved baseline of `command` on `device`."""
        with self._store.begin() as conn:
            return self._baseline(conn, device, command)

    def get(self, snapshot_id: int) -> Snapshot | None:
        """One snapshot by id."""
        with self._store.begin() as conn:
            row = conn.execute(select(snapshots).where(snapshots.c.id == snapshot_id)).first()
        return _snapshot(row) if row is not None else None

    def devices(self) -> list[str]:
        """Every device with a snapshot, in name order."""
        with self._store.begin() as conn:
            return sorted(r.device for r in conn.execute(select(snapshots.c.device).distinct()))

    def commands(self, device: str) -> list[str]:
        """Every command collected from `device`, in name order."""
        with self._store.begin() as conn:
            rows = conn.execute(select(snapshots.c.command).where(snapshots.c.device == device).distinct())
            return sorted(r.command for r in rows)

    def history(self, device: str, command: str, limit: int = 20) -> list[Snapshot]:
        """The newest `limit` distinct snapshots of `command` on `device`, newest first."""
        with self._store.begin() as conn:
            rows = conn.execute(select(snapshots).where(snapshots.c.device == device, snapshots.c.command == command)
                                .order_by(snapshots.c.id.desc()).limit(limit))
            return [_snapshot(r) for r in rows]

    def approve(self, device: str, command: str, actor: str, snapshot_id: int | None = None) -> Baseline | None:
        """Make a snapshot (default: the latest) the approved baseline; audited. None if nothing was collected."""
        with self._store.begin() as conn:
            if snapshot_id is None:
                snap = self._latest(conn, device, command)
            else:
                row = conn.execute(select(snapshots).where(
                    snapshots.c.id == snapshot_id, snapshots.c.device == device,
                    snapshots.c.command == command)).first()
                snap = _snapshot(row) if row is not None else None
            if snap is None:
                return None
            return self._approve(conn, snap, actor, auto=False)

    def _approve(self, conn: Connection, snap: Snapshot, actor: str, *, auto: bool) -> Baseline:
        when = self._clock().isoformat()
        key = {"device": snap.device, "command": snap.command}
        values = {"snapshot_id": snap.id, "approved_by": actor, "approved_at": when, "auto": auto}
        updated = conn.execute(baselines.update().where(baselines.c.device == snap.device,
                                                        baselines.c.command == snap.command).values(**values))
        if updated.rowcount == 0:
            conn.execute(baselines.insert().values(**key, **values))
        if self._audit is not None:
            self._audit.append(actor, "collect.baseline", f"{snap.device}:{snap.command}",
                               {"snapshot_id": snap.id, "sha256": snap.sha256, "auto": auto}, conn=conn)
        return Baseline(snap, actor, when, auto)

    @staticmethod
    def _latest(conn: Connection, device: str, command: str) -> Snapshot | None:
        row = conn.execute(select(snapshots).where(snapshots.c.device == device, snapshots.c.command == command)
                           .order_by(snapshots.c.id.desc()).limit(1)).first()
        return _snapshot(row) if row is not None else None

    @staticmethod
    def _baseline(conn: Connection, device: str, command: str) -> Baseline | None:
        row = conn.execute(select(baselines).where(baselines.c.device == device,
                                                   baselines.c.command == command)).first()
        if row is None:
            return None
        snap = conn.execute(select(snapshots).where(snapshots.c.id == row.snapshot_id)).first()
        if snap is None:
            return None
        return Baseline(_snapshot(snap), row.approved_by, row.approved_at, bool(row.auto))
