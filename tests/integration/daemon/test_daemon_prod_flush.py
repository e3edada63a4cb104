"""A flush that fails keeps its findings: retried with back-off when the store is locked, one poisoned finding isolated."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.notify import NotifySocket

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.daemon.daemon import Daemon
from watchstander.agent.models import Finding
from watchstander.agent.store.incidents import IncidentStore
from watchstander.agent.store.schema import open_store
from watchstander.connectors.syslog import SyslogSource

pytestmark = pytest.mark.integration


def brute_force(src: str, n: int = 12) -> list[bytes]:
    return [f"<38>Nov 27 11:00:{i:02d} bastion sshd[{100 + i}]: Failed password for root from {src} "
            f"port {40000 + i} ssh2".encode() for i in range(n)]


@pytest.fixture
def notify(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    sock = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", sock.path)
    try:
        yield sock
    finally:
        sock.close()


def _daemon(tmp_path: Path, clock) -> tuple[Daemon, str]:  # type: ignore[no-untyped-def]
    db = tmp_path / "w.db"
    cfg = validate_config({"store": {"url": f"sqlite:///{db}"}, "sources": {"flush_s": 3600}})
    return Daemon(App(cfg, open_store(cfg.store.resolved_url()), clock), source_kinds={}), str(db)


def _attackers(daemon: Daemon, clock) -> set[str]:  # type: ignore[no-untyped-def]
    return {a for i in IncidentStore(daemon.app.store, clock).list() for a in i.entities().get("attacker", [])}


def test_a_flush_blocked_by_another_writer_is_kept_backed_off_and_retried(tmp_path: Path, clock,  # type: ignore[no-untyped-def]
                                                                          notify: NotifySocket) -> None:
    daemon, db = _daemon(tmp_path, clock)
    source = SyslogSource("test", clock)
    other = sqlite3.connect(db, isolation_level=None, timeout=1)

    async def scenario() -> None:
        await daemon.start()
        try:
            for src in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"):
                daemon.feed(source.events(brute_force(src)))
            other.execute("BEGIN IMMEDIATE")  # a `replay` or `--local` writer holding the lock past busy_timeout
            try:
                assert await daemon.flush() == 0
                assert daemon.flush_failures == 1
                assert daemon.pending_findings == 5
                assert daemon.last_flush_error and "locked" in daemon.last_flush_error
                assert daemon.last_flush_duration_s >= 4.5
                status = notify.wait_for("STATUS=flush failing")
                assert "locked" in status
                # Backing off: the next scheduled flush does not hammer the store.
                assert await daemon.flush() == 0
                assert daemon.flush_failures == 1
            finally:
                other.execute("ROLLBACK")
            # Meanwhile the detectors consider those findings final and forget them: still stored.
            daemon.newest_event += 10 * daemon.config.correlation.window_s
            await asyncio.sleep(1.1)  # the first back-off step
            assert await daemon.flush() == 5
            assert daemon.pipeline.findings == []
            assert daemon.pending_findings == 0
            assert daemon.last_flush_error is not None  # the last error stays readable for metrics
            assert daemon.flush_failing_for_s == 0.0
            notify.wait_for("STATUS=running")
        finally:
            await daemon.stop()

    try:
        asyncio.run(scenario())
    finally:
        other.close()
    assert _attackers(daemon, clock) == {f"192.0.2.{i}" for i in range(1, 6)}
    daemon.app.store.close()


def test_a_finding_that_cannot_be_stored_is_dropped_and_the_rest_stored(tmp_path: Path, clock,  # type: ignore[no-untyped-def]
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    daemon, _ = _daemon(tmp_path, clock)
    source = SyslogSource("test", clock)

    async def scenario() -> None:
        await daemon.start()
        try:
            for src in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"):
                daemon.feed(source.events(brute_force(src)))
            t = daemon.pipeline.findings[0].last_seen
            # A lone surrogate in a value (a parser bug, say) cannot be encoded for the store.
            daemon.pipeline.findings.insert(2, Finding("ssh_bruteforce", "poisoned", "high",
                                                       {"attacker": "192.0.2.66\udcff"}, (), t, t, count=9))
            with caplog.at_level(logging.ERROR, logger="watchstander.agent.daemon.daemon"):
                written = await daemon.flush()
            assert written == 4
            assert daemon.poisoned_findings == 1
            assert daemon.pending_findings == 0
            assert daemon.flush_failures == 0
            assert any("cannot be stored" in r.getMessage() for r in caplog.records)
            # Dropped for good: the next flush does not try it again.
            assert await daemon.flush() == 0
            assert daemon.poisoned_findings == 1
        finally:
            await daemon.stop()

    asyncio.run(scenario())
    assert _attackers(daemon, clock) == {f"192.0.2.{i}" for i in range(1, 5)}
    daemon.app.store.close()
