"""A sensor whose PostgreSQL server goes away keeps detecting, spools, restarts, and delivers everything once, in order."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from support.notify import NotifySocket
from support.postgres import PostgresServer, _as_postgres, start_server, why_unavailable

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.config.model import AgentConfig
from watchstander.agent.daemon.daemon import Daemon
from watchstander.agent.daemon.metrics import build_registry
from watchstander.agent.store.engine import connect
from watchstander.agent.store.incidents import findings, incidents
from watchstander.agent.store.schema import open_store
from watchstander.connectors.syslog import SyslogSource

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def brute_force(n: int) -> list[bytes]:
    """A password-guessing burst from 192.0.2.n, in its own minute (so first-seen follows n)."""
    return [f"<38>Nov 27 10:{n:02d}:{i:02d} bastion sshd[{100 + i}]: Failed password for root from 192.0.2.{n} "
            f"port {40000 + i} ssh2".encode() for i in range(12)]


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    server = start_server()  # its own server: stopping the session's would disturb other tests
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def notify(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    sock = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", sock.path)
    try:
        yield sock
    finally:
        sock.close()


def _stop(server: PostgresServer) -> None:
    _as_postgres([str(server.bin_dir / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "fast", "-w", "stop"])


def _sensor(cfg: AgentConfig, clock, *, migrate: bool) -> Daemon:  # type: ignore[no-untyped-def]
    url = cfg.store.resolved_url()
    store = open_store(url) if migrate else connect(url)  # a server that is down cannot be migrated
    return Daemon(App(cfg, store, clock), source_kinds={})


def _stored(url: str) -> tuple[int, list[str]]:
    store = connect(url)
    try:
        with store.engine.connect() as conn:
            n_incidents = conn.execute(select(func.count()).select_from(incidents)).scalar_one()
            rows = conn.execute(select(findings.c.entities_json).order_by(findings.c.id)).scalars().all()
    finally:
        store.close()
    return n_incidents, rows


async def _until_delivered(daemon: Daemon, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while daemon.pending_findings:
        assert time.monotonic() < deadline, f"still {daemon.pending_findings} finding(s) pending"
        await daemon.flush()
        await asyncio.sleep(0.3)


def test_findings_made_while_the_server_is_down_are_spooled_across_a_restart_and_delivered_once_in_order(
        server: PostgresServer, tmp_path: Path, clock, notify: NotifySocket,  # type: ignore[no-untyped-def]
        caplog: pytest.LogCaptureFixture) -> None:
    url = server.url(server.create_database())
    spool = tmp_path / "state" / "findings-spool.db"
    cfg = validate_config({"store": {"url": url, "spool": str(spool)}, "sources": {"flush_s": 3600},
                           "agent": {"name": "edge-1"}, "audit": {"seal": False}})
    source = SyslogSource("test", clock)

    async def first_process() -> Daemon:
        daemon = _sensor(cfg, clock, migrate=True)
        await daemon.start()
        try:
            for n in (1, 2):
                daemon.feed(source.events(brute_force(n)))
            assert await daemon.flush() == 2 and not spool.exists()  # no outage, no spool file
            _stop(server)
            for n in (3, 4, 5):
                daemon.feed(source.events(brute_force(n)))
            assert await daemon.flush() == 0
            assert daemon.flush_failures == 1 and daemon.spool_findings == 3
            assert "flush failing" in notify.wait_for("STATUS=flush failing")
            # Detection goes on; while backing off, what it finds goes straight to the spool.
            for n in (6, 7):
                daemon.feed(source.events(brute_force(n)))
            assert await daemon.flush() == 0
            assert daemon.spool_findings == 5 and daemon.pending_findings == 5
        finally:
            await daemon.stop()  # its last flush fails too: the spool keeps everything
        return daemon

    first = asyncio.run(first_process())
    first.app.store.close()  # the App leaves its store to its owner
    assert first.spool_findings == 5 and first.spool_dropped == 0

    async def second_process() -> Daemon:
        # A new process while the server is still down: it starts anyway, buffering.
        daemon = _sensor(cfg, clock, migrate=False)
        with caplog.at_level(logging.WARNING, logger="watchstander.agent.daemon.daemon"):
            await daemon.start()
        try:
            assert any("left in the spool" in r.getMessage() for r in caplog.records)
            assert any("cannot be reached" in r.getMessage() and "starting anyway" in r.getMessage()
                       for r in caplog.records)
            assert "runs.dispatch" not in daemon.jobs.names() and "runs.revert_due" not in daemon.jobs.names()
            daemon.feed(source.events(brute_force(8)))
            await daemon.flush()
            assert daemon.spool_findings == 6
            scrape = {m.name: m.samples[0].value for m in build_registry(daemon).collect() if m.samples}
            assert scrape["watchstander_spool_findings"] == 6 and scrape["watchstander_spool_bytes"] > 0
            assert scrape["watchstander_flush_failing"] == 1.0
            server._start()
            await _until_delivered(daemon)
            assert daemon.spool_findings == 0 and daemon.spool_delivered == 6
            assert daemon.flush_failing_for_s == 0.0
            scrape = {m.name: m.samples[0].value for m in build_registry(daemon).collect() if m.samples}
            assert scrape["watchstander_spool_delivered"] == 6 and scrape["watchstander_spool_dropped"] == 0
            # The runs the last process left are recovered once the store is back; then runs are dispatched.
            deadline = time.monotonic() + 30
            while "runs.revert_due" not in daemon.jobs.names():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        finally:
            await daemon.stop()
        return daemon

    asyncio.run(second_process()).app.store.close()
    n_incidents, rows = _stored(url)
    attackers = [row.split('"attacker": "')[1].split('"')[0] for row in rows]
    assert attackers == [f"192.0.2.{n}" for n in range(1, 9)]  # each once, in the order they were found
    assert n_incidents == 8


def test_a_full_spool_drops_the_oldest_findings_counts_them_and_says_so_once(
        server: PostgresServer, tmp_path: Path, clock,  # type: ignore[no-untyped-def]
        caplog: pytest.LogCaptureFixture) -> None:
    url = server.url(server.create_database())
    cfg = validate_config({"store": {"url": url, "spool": str(tmp_path / "spool.db"), "spool_max_findings": 3},
                           "sources": {"flush_s": 3600}, "audit": {"seal": False}})
    source = SyslogSource("test", clock)

    async def scenario() -> None:
        daemon = _sensor(cfg, clock, migrate=True)
        await daemon.start()
        try:
            _stop(server)
            with caplog.at_level(logging.WARNING, logger="watchstander.agent.daemon.daemon"):
                for n in range(1, 7):
                    daemon.feed(source.events(brute_force(n)))
                    await daemon.flush()
                assert daemon.spool_findings == 3 and daemon.spool_dropped == 3
                full = [r for r in caplog.records if "is full" in r.getMessage()]
                assert len(full) == 1 and "dropping the oldest" in full[0].getMessage()
                server._start()
                await _until_delivered(daemon)
            assert any("3 dropped while it was full" in r.getMessage() for r in caplog.records)
            assert daemon.spool_delivered == 3
        finally:
            await daemon.stop()
            daemon.app.store.close()

    asyncio.run(scenario())
    n_incidents, rows = _stored(url)
    assert [row.split('"attacker": "')[1].split('"')[0] for row in rows] == ["192.0.2.4", "192.0.2.5", "192.0.2.6"]
    assert n_incidents == 3


def _as_admin(url: str, *statements: str) -> None:
    store = connect(url)
    try:
        with store.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        store.close()


def test_a_store_that_answers_but_cannot_be_recovered_is_retried_until_it_can(
        server: PostgresServer, tmp_path: Path, clock, notify: NotifySocket,  # type: ignore[no-untyped-def]
        caplog: pytest.LogCaptureFixture) -> None:
    db = server.create_database()
    admin = server.url(db)
    open_store(admin).close()  # migrated by its owner
    # The sensor's role may do everything but read the runs: recovering them fails with a ProgrammingError.
    _as_admin(admin, "CREATE ROLE sensor LOGIN",
              "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO sensor",
              "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO sensor",
              "REVOKE SELECT ON runs FROM sensor")
    url = f"postgresql+psycopg://sensor@127.0.0.1:{server.port}/{db}"
    cfg = validate_config({"store": {"url": url, "spool": str(tmp_path / "spool.db")}, "sources": {"flush_s": 3600},
                           "audit": {"seal": False}})
    _stop(server)

    async def scenario() -> None:
        daemon = _sensor(cfg, clock, migrate=False)
        await daemon.start()
        try:
            assert not daemon.store_ready
            server._start()
            deadline = time.monotonic() + 30
            with caplog.at_level(logging.ERROR, logger="watchstander.agent.daemon.daemon"):
                while "permission denied" not in (daemon.recovery_error or ""):
                    assert time.monotonic() < deadline, daemon.recovery_error
                    await asyncio.sleep(0.2)
            attempts = daemon.recovery_attempts
            assert "store not ready" in notify.wait_for("STATUS=store not ready")
            assert any("answers but is not ready" in r.getMessage() for r in caplog.records)
            await asyncio.sleep(0.5)
            assert daemon._recovering is not None and not daemon._recovering.done()  # still trying
            assert not daemon.store_ready and "runs.dispatch" not in daemon.jobs.names()
            _as_admin(admin, "GRANT SELECT ON runs TO sensor")
            while not daemon.store_ready:
                assert time.monotonic() < deadline + 30, daemon.recovery_error
                await asyncio.sleep(0.2)
            assert daemon.recovery_attempts > attempts and daemon.recovery_error is None
            assert "runs.dispatch" in daemon.jobs.names()
        finally:
            await daemon.stop()
            daemon.app.store.close()

    asyncio.run(scenario())


def test_stop_starts_no_runs_when_the_store_comes_back_while_it_drains(
        server: PostgresServer, tmp_path: Path, clock, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url = server.url(server.create_database())
    open_store(url).close()
    cfg = validate_config({"store": {"url": url, "spool": str(tmp_path / "spool.db")}, "sources": {"flush_s": 3600},
                           "audit": {"seal": False}})
    _stop(server)

    async def scenario() -> Daemon:
        daemon = _sensor(cfg, clock, migrate=False)
        await daemon.start()
        recovering = daemon._recovering
        assert recovering is not None

        async def drain_while_the_store_returns(grace_s: float) -> None:
            # The window the race needs: the server answers while stop() waits for runs in flight.
            await asyncio.get_running_loop().run_in_executor(None, server._start)
            await asyncio.sleep(5)  # longer than the recovery task's back-off so far

        monkeypatch.setattr(daemon.runs, "drain", drain_while_the_store_returns)
        try:
            await daemon.stop()
        finally:
            daemon.app.store.close()
        assert recovering.cancelled()
        return daemon

    daemon = asyncio.run(scenario())
    assert not daemon.store_ready and "runs.dispatch" not in daemon.jobs.names()
