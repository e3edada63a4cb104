"""Several agents sharing one PostgreSQL store: transaction locks by name, and jobs run once per cluster.

    xact_lock        wait for a named lock held until the transaction ends (pg_advisory_xact_lock)
    try_xact_lock    the same without waiting: False when another node holds it
    run_once         claim one occurrence of a scheduled job (a lease row): exactly one node wins it

On SQLite the store's one write lock stands in for every named lock: `xact_lock` takes it at once
(a write that changes nothing), so a second process on the same file waits for the first instead of
failing on a late lock upgrade (SQLITE_BUSY, which busy_timeout does not cover); `try_xact_lock`
is then always True. `run_once` works the same on both engines (its conditional UPDATE is the guard).
A node that wins an occurrence and dies before finishing it loses that occurrence: the next one
runs as scheduled (sweeps and reminders are idempotent, so nothing is owed twice).
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table, text, update

from .engine import Component, Store, insert_new

log = logging.getLogger(__name__)

_meta = MetaData()
job_leases = Table(
    "job_leases", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("occurrence", BigInteger, nullable=False),  # the newest occurrence claimed; they only grow
    Column("holder", String(300), nullable=False),
    Column("claimed_at", String(40), nullable=False),
)


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


SCHEMA = Component("cluster", (_v1,))


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (PostgreSQL's advisory locks take a bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def xact_lock(conn: Connection, name: str) -> None:
    """Wait for the named lock; it is held until `conn`'s transaction ends (SQLite: its write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(name)})
    else:
        conn.execute(update(job_leases).where(job_leases.c.id == -1).values(id=job_leases.c.id))


def try_xact_lock(conn: Connection, name: str) -> bool:
    """Take the named lock for `conn`'s transaction if nobody holds it; False when another does."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key(name)}).scalar_one())


def run_once(store: Store, name: str, occurrence: int, holder: str, now: str) -> bool:
    """Claim occurrence `occurrence` of job `name` for `holder`; True for exactly one caller per occurrence.

    Occurrences are numbered by the caller (an interval's index, a day's ordinal) and only grow: a
    node whose clock lags and asks for an older occurrence than the one claimed loses it too.
    """
    with store.begin() as conn:
        if insert_new(conn, job_leases, ("name",), {"name": name, "occurrence": occurrence, "holder": holder,
                                                    "claimed_at": now}) is not None:
            return True
        won = conn.execute(update(job_leases).where(
            job_leases.c.name == name, job_leases.c.occurrence < occurrence,
        ).values(occurrence=occurrence, holder=holder, claimed_at=now)).rowcount == 1
    if not won:
        log.debug("job %s occurrence %d: another node has it", name, occurrence)
    return won
