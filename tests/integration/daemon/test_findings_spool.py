"""The findings spool on a real SQLite file: bounds, order, latest snapshot wins, reopen, corruption; a daemon draining it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select
from sqlalchemy.pool import QueuePool

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.daemon.daemon import Daemon
from watchstander.agent.daemon.spool import Spool, SpoolEntryError, SpoolError, decode, encode
from watchstander.agent.models import SEVERITIES, Finding
from watchstander.agent.store.engine import Store
from watchstander.agent.store.incidents import findings as findings_table
from watchstander.agent.store.schema import open_store
from watchstander.connectors.syslog import SyslogSource

pytestmark = pytest.mark.integration


def finding(i: int, count: int = 3, title: str = "scan") -> Finding:
    return Finding("portscan", title, "medium", {"attacker": f"198.51.100.{i}"}, ("T1046",),
                   1e9 + i, 1e9 + i + 5, count, {"ports": count}, {"ports": [22, 80]}, [f"ev-{i}"])


def attackers(spool: Spool, limit: int = 1000) -> list[str]:
    return [f.entities["attacker"] for _, f in spool.peek(limit)]


def test_entries_come_back_oldest_first_and_a_newer_snapshot_keeps_its_place(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s" / "spool.db", 100, 1 << 20)
    spool.put([finding(1), finding(2)])
    spool.put([finding(3), finding(1, count=9)])  # finding 1 again, grown: replaces the older snapshot
    got = spool.peek(10)
    assert [f.entities["attacker"] for _, f in got] == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    assert got[0][1].count == 9 and got[0][1] == finding(1, count=9)
    assert spool.depth == 3 and spool.bytes > 0
    spool.remove([got[0][0], got[1][0]])
    assert attackers(spool) == ["198.51.100.3"] and spool.delivered == 2 and spool.depth == 1
    spool.close()
    # Private to its owner: folder 0700, file 0600.
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "s" / "spool.db").stat().st_mode) == 0o600


def test_a_full_spool_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", 5, 1 << 20)
    for i in range(1, 9):
        spool.put([finding(i)])
    assert attackers(spool) == [f"198.51.100.{i}" for i in range(4, 9)]
    assert spool.dropped == 3 and spool.depth == 5
    # The byte bound too: room for two entries of this size.
    size = len(encode(finding(1)))
    small = Spool(tmp_path / "small.db", 100, 2 * size + size // 2)
    assert small.put([finding(i) for i in range(1, 5)]) == 2
    assert attackers(small) == ["198.51.100.3", "198.51.100.4"] and small.dropped == 2
    assert small.bytes <= small.max_bytes
    spool.close()
    small.close()


def test_what_is_spooled_survives_reopening_counters_too(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path, 3, 1 << 20)
    spool.put([finding(i) for i in range(1, 6)])
    first, _ = spool.peek(1)[0]
    spool.remove([first])
    spool.close()
    again = Spool(path, 3, 1 << 20)
    assert attackers(again) == ["198.51.100.4", "198.51.100.5"]
    assert (again.depth, again.dropped, again.delivered) == (2, 2, 1)
    again.put([finding(6)])  # order goes on after the survivors
    assert attackers(again) == ["198.51.100.4", "198.51.100.5", "198.51.100.6"]
    again.close()


def test_a_corrupt_spool_is_set_aside_with_a_clear_error_and_a_new_one_started(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "spool.db"
    garbage = b"this is no database, a disk error left it so\x00" * 100
    path.write_bytes(garbage)
    with caplog.at_level(logging.ERROR, logger="watchstander.agent.daemon.spool"):
        spool = Spool(path, 10, 1 << 20)
    assert spool.set_aside is not None and spool.set_aside.read_bytes() == garbage  # nothing lost
    assert spool.set_aside.name.startswith("spool.db.corrupt-")
    assert any("unreadable" in r.getMessage() and str(spool.set_aside) in r.getMessage() for r in caplog.records)
    spool.put([finding(1)])
    assert attackers(spool) == ["198.51.100.1"]
    spool.close()


def test_an_undecodable_entry_is_moved_to_the_rejected_table_not_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path, 10, 1 << 20)
    spool.put([finding(1), finding(2), finding(3)])
    with sqlite3.connect(path) as con:  # a hand edit, or a newer release's format
        con.execute("UPDATE entries SET body = '{\"v\": 99}' WHERE key = ?", (finding(2).key,))
    with caplog.at_level(logging.ERROR, logger="watchstander.agent.daemon.spool"):
        assert attackers(spool) == ["198.51.100.1", "198.51.100.3"]
    assert spool.rejected == 1 and spool.depth == 2
    assert any("cannot be read" in r.getMessage() for r in caplog.records)
    spool.close()
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT key, body FROM rejected").fetchall() == [(finding(2).key, '{"v": 99}')]


def test_a_spool_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "a-file-not-a-folder"
    folder.write_text("x")
    with pytest.raises(SpoolError, match="a-file-not-a-folder"):
        Spool(folder / "spool.db", 10, 1 << 20)
    with pytest.raises(ValueError):
        Spool(tmp_path / "s.db", 0, 1)


text = st.text(max_size=40)  # lone surrogates included: telemetry is attacker-controlled text
json_value = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | text
                          | st.floats(allow_nan=False),
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                          max_leaves=12)
findings = st.builds(
    Finding, text, text, st.sampled_from(SEVERITIES), st.dictionaries(text, text, max_size=4),
    st.lists(text, max_size=4).map(tuple), st.floats(allow_nan=False), st.floats(allow_nan=False),
    st.integers(0, 2**62), st.dictionaries(text, st.integers(-2**62, 2**62), max_size=4),
    st.dictionaries(text, json_value, max_size=4), st.lists(text, max_size=5))


@given(findings)
def test_a_finding_survives_encoding_exactly(f: Finding) -> None:
    body = encode(f)
    assert body.isascii()
    assert decode(body) == f


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode)
       | st.dictionaries(text, json_value, max_size=6).map(lambda d: str.encode(repr(d))))
def test_hostile_bodies_give_a_clear_error_and_nothing_else(body: bytes) -> None:
    try:
        decode(body)
    except SpoolEntryError:
        pass


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 12), min_size=1, max_size=30), st.integers(1, 8))
def test_the_spool_keeps_the_newest_of_each_finding_in_first_spooled_order_within_its_bound(
        tmp_path: Path, puts: list[int], bound: int) -> None:
    path = tmp_path / f"p-{len(puts)}-{bound}-{abs(hash(tuple(puts)))}.db"
    path.unlink(missing_ok=True)
    spool = Spool(path, bound, 1 << 20)
    model: dict[int, int] = {}  # attacker -> latest count, insertion-ordered like the spool
    dropped = 0
    for n, i in enumerate(puts):
        spool.put([finding(i, count=n)])
        if i in model:
            model[i] = n
        else:
            model[i] = n
            while len(model) > bound:
                del model[next(iter(model))]
                dropped += 1
    got = [(int(f.entities["attacker"].rsplit(".", 1)[1]), f.count) for _, f in spool.peek(100)]
    assert got == list(model.items())
    assert spool.dropped == dropped
    spool.close()


def test_a_daemon_delivers_a_spool_left_by_a_previous_process_before_anything_new(
        tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"}, "sources": {"flush_s": 3600}})
    assert cfg.store.resolved_spool() == tmp_path / "w-findings-spool.db"
    left = Spool(cfg.store.resolved_spool(), 10, 1 << 20)
    later = [dataclasses.replace(finding(i), first_seen=2e9 + i, last_seen=2e9 + i + 5) for i in (8, 9)]
    left.put(later)  # spooled first, though found later (2033) than what the daemon detects next (2026)
    left.close()
    daemon = Daemon(App(cfg, open_store(cfg.store.resolved_url()), clock), source_kinds={})
    lines = [f"<38>Nov 27 11:00:{i:02d} bastion sshd[{100 + i}]: Failed password for root from 192.0.2.1 "
             f"port {40000 + i} ssh2".encode() for i in range(12)]

    async def scenario() -> None:
        await daemon.start()
        try:
            assert daemon.spool_findings == 2 and daemon.pending_findings == 2
            daemon.feed(SyslogSource("test", clock).events(lines))
            await daemon.flush()
            assert daemon.pending_findings == 0 and daemon.spool_delivered == 2
        finally:
            await daemon.stop()

    asyncio.run(scenario())
    with daemon.app.store.engine.connect() as conn:
        stored = [r for r in conn.execute(select(findings_table.c.entities_json).order_by(findings_table.c.id))
                  .scalars()]
    daemon.app.store.close()
    # The spool first (one batch, correlated in time order), then the new finding: not one batch by time.
    assert ['"198.51.100.8"' in stored[0], '"198.51.100.9"' in stored[1], '"192.0.2.1"' in stored[2]] == [True] * 3


def test_a_second_process_cannot_open_a_spool_in_use_and_is_told_which(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    first = Spool(path, 10, 1 << 20)
    with pytest.raises(SpoolError, match=rf"in use by another process \(pid {os.getpid()}"):
        Spool(path, 10, 1 << 20)
    first.close()
    again = Spool(path, 10, 1 << 20)  # the lock goes with the spool that held it
    again.close()


def test_a_stale_count_is_corrected_from_the_file_instead_of_reading_forever(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path, 10, 1 << 20)
    spool.put([finding(1), finding(2)])
    with sqlite3.connect(path) as con:  # emptied behind its back (a hand edit; another daemon cannot, see above)
        con.execute("DELETE FROM entries")
    assert spool.depth == 2
    assert spool.peek(10) == [] and spool.depth == 0 and spool.bytes == 0
    spool.close()


def test_a_commit_that_fails_after_the_transaction_ended_is_a_spool_error(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", 10, 1 << 20)
    spool.put([finding(1)])
    # COMMIT fails with no transaction left to roll back (as after SQLite rolled back on a full disk).
    with pytest.raises(SpoolError, match="cannot write the findings spool"), spool._transaction() as con:
        con.execute("DELETE FROM entries")
        con.execute("COMMIT")
        con.execute("INSERT INTO counters (name, value) VALUES ('x', 0)")  # autocommitted, no transaction
    assert spool.depth == 0 and spool.peek(10) == []  # the figures follow the file
    spool.close()


def _spooled_daemon(tmp_path: Path, clock, *, removals_fail: bool) -> Daemon:  # type: ignore[no-untyped-def]
    """A daemon over a SQLite store, with two findings a previous process spooled."""
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"}, "sources": {"flush_s": 3600}})
    left = Spool(cfg.store.resolved_spool(), 10, 1 << 20)
    left.put([finding(1), finding(2)])
    left.close()
    if removals_fail:
        _refuse_removals(cfg.store.resolved_spool(), True)
    return Daemon(App(cfg, open_store(cfg.store.resolved_url()), clock), source_kinds={})


def _refuse_removals(path: Path, refuse: bool) -> None:
    # The spool's own file refuses deletes: the store took the batch, the spool cannot let it go.
    with sqlite3.connect(path) as con:
        con.execute("CREATE TRIGGER no_delete BEFORE DELETE ON entries BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
                    if refuse else "DROP TRIGGER no_delete")


def test_a_spool_that_cannot_remove_what_the_store_took_backs_off_and_delivers_nothing_twice(
        tmp_path: Path, clock, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    daemon = _spooled_daemon(tmp_path, clock, removals_fail=True)

    async def scenario() -> None:
        await daemon.start()
        try:
            with caplog.at_level(logging.ERROR, logger="watchstander.agent.daemon.daemon"):
                assert await daemon.flush() == 2  # stored; the spool could not remove them
            assert daemon.flush_failures == 1 and "disk says no" in (daemon.last_flush_error or "")
            assert daemon.spool_findings == 2 and daemon.spool_delivered == 0
            assert await daemon.flush() == 0  # backing off: not delivered again
            _refuse_removals(daemon.spool_path, False)
            await asyncio.sleep(1.1)  # the first back-off
            assert await daemon.flush() == 0  # removed first, then nothing left to deliver
            assert daemon.spool_findings == 0 and daemon.spool_delivered == 2 and daemon.incidents_written == 2
            assert daemon.flush_failing_for_s == 0.0
        finally:
            await daemon.stop()

    asyncio.run(scenario())
    daemon.app.store.close()


def test_stop_closes_the_spool_and_the_app_when_the_spool_cannot_remove_what_it_delivered(
        tmp_path: Path, clock, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    daemon = _spooled_daemon(tmp_path, clock, removals_fail=True)

    async def scenario() -> None:
        await daemon.start()
        with caplog.at_level(logging.WARNING, logger="watchstander.agent.daemon.daemon"):
            await daemon.stop()  # its last flush delivers the spool, which cannot remove the entries

    asyncio.run(scenario())
    assert any("could not remove" in r.getMessage() for r in caplog.records)
    daemon.app.store.close()
    again = Spool(daemon.spool_path, 10, 1 << 20)  # closed, and its lock let go
    assert again.depth == 2  # delivered again after the next start: the store keeps one copy of each
    again.close()


def test_a_second_daemon_on_the_same_spool_does_not_start(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    first = _spooled_daemon(tmp_path, clock, removals_fail=False)
    second = Daemon(App(first.config, open_store(first.config.store.resolved_url()), clock), source_kinds={})

    async def scenario() -> None:
        await first.start()
        try:
            with pytest.raises(SpoolError, match=f"in use by another process \\(pid {os.getpid()}"):
                await second.start()
        finally:
            await first.stop()

    asyncio.run(scenario())
    for d in (first, second):
        d.app.store.close()


POOL = 3  # a flush may hold two connections at once


def test_a_pool_with_no_free_connection_is_an_outage_not_a_poisoned_finding(
        tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'w.db'}"
    open_store(url).close()  # migrated
    cfg = validate_config({"store": {"url": url}, "sources": {"flush_s": 3600}})
    store = Store(create_engine(url, poolclass=QueuePool, pool_size=POOL, max_overflow=0, pool_timeout=0.2))
    daemon = Daemon(App(cfg, store, clock), source_kinds={})
    lines = [f"<38>Nov 27 11:00:{i:02d} bastion sshd[{100 + i}]: Failed password for root from 192.0.2.1 "
             f"port {40000 + i} ssh2".encode() for i in range(12)]

    async def scenario() -> None:
        await daemon.start()
        try:
            daemon.feed(SyslogSource("test", clock).events(lines))
            with contextlib.ExitStack() as busy:
                for _ in range(POOL):  # every pooled connection taken
                    busy.enter_context(store.engine.connect())
                assert await daemon.flush() == 0
            assert daemon.poisoned_findings == 0 and daemon.pending_findings == 1
            assert "TimeoutError" in (daemon.last_flush_error or "")
            await asyncio.sleep(1.1)
            assert await daemon.flush() == 1 and daemon.pending_findings == 0
        finally:
            await daemon.stop()

    asyncio.run(scenario())
    store.close()
