"""systemd integration: the watchdog pinged from the loop, journal priorities, and no start on a store we cannot write."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.notify import NotifySocket

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.daemon.daemon import Daemon
from watchstander.agent.errors import Exit
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration


@pytest.fixture
def notify(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    sock = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", sock.path)
    try:
        yield sock
    finally:
        sock.close()


def test_the_loop_pings_the_watchdog_at_half_the_interval_and_stops_when_stuck(  # type: ignore[no-untyped-def]
        tmp_path: Path, clock, notify: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # WatchdogSec=0.4: a ping every 0.2 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"}})
    daemon = Daemon(App(cfg, open_store(cfg.store.resolved_url()), clock), source_kinds={})

    async def scenario() -> tuple[float, float]:
        await daemon.start()
        try:
            await asyncio.sleep(1.0)
            stuck_from = time.monotonic()
            time.sleep(1.0)  # noqa: ASYNC251  (on purpose: the loop is stuck, nothing may ping for it)
            stuck_until = time.monotonic()
            await asyncio.sleep(0.5)
            return stuck_from, stuck_until
        finally:
            await daemon.stop()

    stuck_from, stuck_until = asyncio.run(scenario())
    time.sleep(0.1)
    pings = [t for t, _ in notify.states("WATCHDOG=1")]
    before = [t for t in pings if t < stuck_from]
    assert len(before) >= 3, pings
    assert all(b - a < 0.35 for a, b in itertools.pairwise(before)), before
    # One ping may be the loop's first act once unblocked; none arrives in the stuck second.
    assert not [t for t in pings if stuck_from + 0.05 < t < stuck_until - 0.05], pings
    assert [t for t in pings if t > stuck_until], "pings resume once the loop runs again"
    daemon.app.store.close()


def test_no_watchdog_pings_for_another_process(tmp_path: Path, clock, notify: NotifySocket,  # type: ignore[no-untyped-def]
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for our parent, not for us
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"}})
    daemon = Daemon(App(cfg, open_store(cfg.store.resolved_url()), clock), source_kinds={})

    async def scenario() -> None:
        await daemon.start()
        await asyncio.sleep(0.4)
        await daemon.stop()

    asyncio.run(scenario())
    assert daemon.watchdog_pings == 0 and not notify.states("WATCHDOG=1")
    daemon.app.store.close()


LOG_EVERY_LEVEL = """
import logging
from watchstander.agent.cli.logs import configure_logging
configure_logging("DEBUG")
log = logging.getLogger("watchstander.test")
log.debug("a debug line")
log.info("an info line")
log.warning("a warning line")
log.error("an error line")
try:
    raise ValueError("boom")
except ValueError:
    log.exception("a failure")
"""


@pytest.mark.parametrize("journal", [True, False])
def test_every_line_carries_its_journal_priority_when_stderr_is_the_journal(tmp_path: Path, journal: bool) -> None:
    err = tmp_path / "stderr"
    with open(err, "wb") as fh:
        st = os.fstat(fh.fileno())
        stream = f"{st.st_dev}:{st.st_ino}" if journal else f"{st.st_dev}:{st.st_ino + 1}"  # another file
        env = {**os.environ, "JOURNAL_STREAM": stream}
        subprocess.run([sys.executable, "-c", LOG_EVERY_LEVEL], stderr=fh, env=env, check=True, timeout=60)
    lines = err.read_text(encoding="utf-8").splitlines()
    if not journal:
        assert "WARNING watchstander.test: a warning line" in lines
        assert not [line for line in lines if line.startswith("<")]
        return
    assert "<7>DEBUG watchstander.test: a debug line" in lines
    assert "<6>INFO watchstander.test: an info line" in lines
    assert "<4>WARNING watchstander.test: a warning line" in lines
    assert "<3>ERROR watchstander.test: an error line" in lines
    # A traceback is several journal entries: each of its lines keeps the record's priority.
    failure = lines.index("<3>ERROR watchstander.test: a failure")
    assert lines[failure + 1] == "<3>Traceback (most recent call last):"
    assert "<3>ValueError: boom" in lines
    assert all(line[:3] in {"<3>", "<4>", "<6>", "<7>"} for line in lines), lines


def _drop_dac(argv: list[str]) -> list[str]:
    # Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH obeys file modes like the service user would.
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all", *argv]


@pytest.mark.privileged
@pytest.mark.parametrize(("mode", "owner"), [(0o444, 0), (0o600, 65534)])
def test_run_refuses_to_start_on_a_store_it_cannot_write(tmp_path: Path, mode: int, owner: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop capabilities and chown the store")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    db = tmp_path / "w.db"
    open_store(f"sqlite:///{db}").close()  # made by a root-run CLI command before the first start
    os.chown(db, owner, owner)
    db.chmod(mode)
    sock_dir = tempfile.mkdtemp(prefix=f"ws-{os.getpid()}-", dir="/tmp")
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{db}"\n[sources]\nsyslog_udp = ["127.0.0.1:0"]\n'
                   f'[control]\nsocket = "{sock_dir}/c.sock"\n', encoding="utf-8")
    notify = NotifySocket()
    try:
        proc = subprocess.run(_drop_dac([sys.executable, "-m", "watchstander.agent.cli.main", "run", "--config",
                                         str(cfg)]),
                              check=False, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "NOTIFY_SOCKET": notify.path})
        time.sleep(0.1)
        assert proc.returncode == Exit.STORE, proc.stderr
        assert str(db) in proc.stderr
        assert f"mode {mode:04o}" in proc.stderr
        assert ("owner root (uid 0)" if owner == 0 else "(uid 65534)") in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not notify.states("READY=1")
    finally:
        notify.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
