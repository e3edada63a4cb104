"""The store on real SQLite files: migrations, WAL, and an audit chain that exposes every tampering."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from watchstander.agent.errors import StoreError
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "w.db"


def filled(db: Path, clock, n: int = 6) -> AuditLog:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{db}")
    log = AuditLog(store, clock)
    for i in range(n):
        log.append(f"uid:{1000 + i}:op", "suggestion.approve", f"suggestion:{i}", {"n": i, "note": "é✓"})
    return log


def test_store_is_created_in_wal_mode_with_every_component_migrated(db: Path) -> None:
    store = open_store(f"sqlite:///{db}")
    versions = store.versions()
    store.close()
    assert {"core", "audit", "guidance", "playbooks"} <= versions.keys()
    assert all(v >= 1 for v in versions.values())
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_is_idempotent(db: Path) -> None:
    first = open_store(f"sqlite:///{db}").versions()
    assert open_store(f"sqlite:///{db}").versions() == first


def test_a_newer_schema_is_refused(db: Path) -> None:
    open_store(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'core'")
    with pytest.raises(StoreError, match="newer than this release"):
        open_store(f"sqlite:///{db}")


def test_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        open_store("nosuchdialect://x")


def test_intact_chain_verifies(db: Path, clock) -> None:  # type: ignore[no-untyped-def]
    log = filled(db, clock)
    result = log.verify()
    assert result.ok and result.checked == 6


def _tamper(db: Path, sql: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(sql)


@pytest.mark.parametrize(("sql", "broken"), [
    ("UPDATE audit_log SET actor = 'uid:0:root' WHERE seq = 3", 3),
    ("UPDATE audit_log SET data = '{\"n\":99}' WHERE seq = 2", 2),
    ("UPDATE audit_log SET time = '2020-01-01T00:00:00+00:00' WHERE seq = 5", 5),
    ("DELETE FROM audit_log WHERE seq = 4", 4),
    ("DELETE FROM audit_log WHERE seq = 6", 6),
    ("DELETE FROM audit_log WHERE seq = 1", 1),
])
def test_edits_and_deletions_are_caught(db: Path, clock, sql: str, broken: int) -> None:  # type: ignore[no-untyped-def]
    log = filled(db, clock)
    _tamper(db, sql)
    result = log.verify()
    assert not result.ok
    assert result.broken_seq == broken, result


def test_reordering_rows_is_caught(db: Path, clock) -> None:  # type: ignore[no-untyped-def]
    log = filled(db, clock)
    with sqlite3.connect(db) as conn:
        # Swap the contents of records 2 and 3, keeping their sequence numbers in place.
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT seq, time, actor, action, subject, data, prev_hash, hash FROM audit_log WHERE seq IN (2, 3)")}
        for seq, other in ((2, 3), (3, 2)):
            conn.execute("UPDATE audit_log SET time=?, actor=?, action=?, subject=?, data=?, prev_hash=?, hash=? "
                         "WHERE seq=?", (*rows[other], seq))
    result = log.verify()
    assert not result.ok and result.broken_seq == 2


def test_rewriting_a_record_with_a_fresh_hash_breaks_the_next_link(db: Path, clock) -> None:  # type: ignore[no-untyped-def]
    from watchstander.agent.store.audit import record_hash

    log = filled(db, clock)
    with sqlite3.connect(db) as conn:
        seq, time, action, subject, data, prev = conn.execute(
            "SELECT seq, time, action, subject, data, prev_hash FROM audit_log WHERE seq = 3").fetchone()
        forged = record_hash(seq, time, "uid:0:root", action, subject, data, prev)
        conn.execute("UPDATE audit_log SET actor='uid:0:root', hash=? WHERE seq=3", (forged,))
    result = log.verify()
    assert not result.ok and result.broken_seq == 4


def test_appends_continue_the_chain_across_reopen(db: Path, clock) -> None:  # type: ignore[no-untyped-def]
    filled(db, clock, 2)
    log = AuditLog(open_store(f"sqlite:///{db}"), clock)
    rec = log.append("uid:1:x", "triage.verdict", "incident:1", {})
    assert rec.seq == 3 and log.verify().ok
