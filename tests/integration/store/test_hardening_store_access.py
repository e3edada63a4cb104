"""Issue 13: a new store is private to its owner; a reader opens it read-only, without migrating it."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from watchstander.agent.errors import StoreError
from watchstander.agent.store.engine import connect
from watchstander.agent.store.schema import COMPONENTS, open_store

pytestmark = pytest.mark.integration


def mode(path: Path) -> int:
    """The permission bits of `path`."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most shells start with (022), which made the store world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_store_is_private_to_its_owner(tmp_path: Path, usual_umask: None) -> None:
    db = tmp_path / "state" / "watchstander" / "w.db"
    store = open_store(f"sqlite:///{db}")
    try:
        with store.begin() as conn:  # the -wal and -shm files exist while a connection is open
            conn.execute(text("SELECT 1"))
            names = sorted(p.name for p in db.parent.iterdir())
            assert names == ["w.db", "w.db-shm", "w.db-wal"]
            assert {name: mode(db.parent / name) for name in names} == dict.fromkeys(names, 0o600)
    finally:
        store.close()
    assert mode(db.parent) == 0o700 and mode(db.parent.parent) == 0o700
    assert mode(db) == 0o600


def test_an_existing_folder_and_file_keep_their_modes(tmp_path: Path, usual_umask: None) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o750)
    db = folder / "w.db"
    db.touch(mode=0o640)
    open_store(f"sqlite:///{db}").close()
    assert (mode(folder), mode(db)) == (0o750, 0o640)


def test_a_read_only_open_reads_and_never_writes(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    open_store(f"sqlite:///{db}").close()
    before = db.read_bytes()
    reader = open_store(f"sqlite:///{db}", read_only=True)
    try:
        assert reader.read_only
        assert reader.versions() == {c.name: len(c.migrations) for c in COMPONENTS}
        with pytest.raises(StoreError):
            with reader.begin() as conn:
                conn.execute(text("DELETE FROM audit_log"))
    finally:
        reader.close()
    assert db.read_bytes() == before


def test_a_read_only_open_does_not_migrate_an_old_schema(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    open_store(f"sqlite:///{db}").close()
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE schema_versions SET version = 0 WHERE component = 'review'")
    con.close()
    before = db.read_bytes()
    with pytest.raises(StoreError) as raised:
        open_store(f"sqlite:///{db}", read_only=True)
    assert "'review'" in str(raised.value) and "version 0" in str(raised.value)
    assert db.read_bytes() == before


def test_a_read_only_open_of_a_missing_or_empty_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as raised:
        open_store(f"sqlite:///{tmp_path / 'absent' / 'w.db'}", read_only=True)
    assert "no store" in str(raised.value)
    assert not (tmp_path / "absent").exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(StoreError) as raised:
        open_store(f"sqlite:///{empty}", read_only=True)
    assert "not been initialised" in str(raised.value)


def test_a_read_only_store_sees_what_is_still_in_the_write_ahead_log(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    writer = open_store(f"sqlite:///{db}")
    try:
        with writer.begin() as conn:
            conn.execute(text("INSERT INTO schema_versions (component, version) VALUES ('extra', 1)"))
        assert (tmp_path / "w.db-wal").stat().st_size > 0
        reader = connect(f"sqlite:///{db}", read_only=True)
        try:
            assert reader.versions()["extra"] == 1
        finally:
            reader.close()
    finally:
        writer.close()
