"""SIGHUP reloads a validated configuration into the running daemon; a bad one is refused and the old one stays."""

from __future__ import annotations

import grp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from support.notify import NotifySocket

from watchstander.agent.clock import system_clock
from watchstander.agent.control.client import ControlClient
from watchstander.agent.store.incidents import IncidentStore
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration


class Lines:
    """The daemon's stderr, read line by line on a thread so the test never blocks on it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self.lines: list[str] = []
        self._stream = proc.stderr
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))

    def close(self) -> None:
        """Wait for the reader to see the end of the stream (the process has exited), then close it."""
        self._thread.join(timeout=10)
        self._stream.close()

    def wait_for(self, text: str, proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            assert proc.poll() is None, f"daemon exited {proc.returncode}: {self.lines}"
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged in {timeout} s: {self.lines}")


def _config(db: Path, port: int, sock_dir: str, failures: int, autonomy: str) -> str:
    return (f'[store]\nurl = "sqlite:///{db}"\n[sources]\nsyslog_udp = ["127.0.0.1:{port}"]\nflush_s = 0.2\n'
            f'[control]\nsocket = "{sock_dir}/c.sock"\nsocket_group = "{grp.getgrgid(os.getgid()).gr_name}"\n'
            f'[policy]\nautonomy = "{autonomy}"\n'
            f'[detectors.bruteforce]\nfailures = {failures}\n')


def _send_failures(port: int, src: str, n: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(n):
            s.sendto(f"<38>Nov 27 11:00:{i:02d} bastion sshd[{100 + i}]: Failed password for root from {src} "
                     f"port {40000 + i} ssh2".encode(), ("127.0.0.1", port))


def test_sighup_applies_a_good_config_and_refuses_a_bad_one(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "w.db"
    sock_dir = tempfile.mkdtemp(prefix=f"ws-{os.getpid()}-", dir="/tmp")  # AF_UNIX paths must stay short
    cfg = tmp_path / "w.toml"
    cfg.write_text(_config(db, port, sock_dir, failures=50, autonomy="recommend"), encoding="utf-8")
    notify = NotifySocket()
    proc = subprocess.Popen([sys.executable, "-m", "watchstander.agent.cli.main", "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": notify.path})
    log = Lines(proc)
    try:
        log.wait_for("listening: syslog", proc)
        notify.wait_for("READY=1")
        _send_failures(port, "192.0.2.51", 6)  # below the running threshold of 50: nothing found
        # A lower threshold and another autonomy: both applied without a restart, the listener untouched.
        cfg.write_text(_config(db, port, sock_dir, failures=3, autonomy="observe"), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        changed = log.wait_for("configuration reloaded; changed:", proc)
        assert "detectors" in changed and "policy" in changed and "sources" not in changed
        assert [m for _, m in notify.states() if m.startswith("RELOADING=1")]
        assert len(notify.states("READY=1")) >= 2
        _send_failures(port, "192.0.2.52", 6)
        log.wait_for("incident ", proc)
        # A broken file is refused at error, and the daemon carries on with what it had.
        cfg.write_text("[detectors.bruteforce\nfailures = 'three'\n", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        refused = log.wait_for("reload refused", proc)
        assert refused.startswith("ERROR ")
        cfg.write_text(_config(db, port, sock_dir, failures=1, autonomy="observe"), encoding="utf-8")  # invalid: ge=2
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        deadline = time.monotonic() + 30
        while sum("reload refused" in line for line in log.lines) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, log.lines
            time.sleep(0.05)
        assert "failures" in [line for line in log.lines if "reload refused" in line][-1]
        assert ControlClient(Path(sock_dir) / "c.sock", timeout=10).call("ping", {}) is not None
        _send_failures(port, "192.0.2.53", 6)  # the threshold of 3 still holds
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        notify.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
    store = open_store(f"sqlite:///{db}")
    try:
        attackers = {a for i in IncidentStore(store, system_clock).list() for a in i.entities().get("attacker", [])}
    finally:
        store.close()
    assert attackers == {"192.0.2.52", "192.0.2.53"}


def test_a_reload_that_changes_the_sources_restarts_them(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from watchstander.agent.app.wiring import App
    from watchstander.agent.config.load import validate_config
    from watchstander.agent.daemon.daemon import Daemon

    def config(**detectors: object) -> dict[str, object]:
        return {"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"}, "detectors": detectors,
                "sources": {"syslog_udp": ["127.0.0.1:0"], "syslog_tcp": ["127.0.0.1:0"], "flush_s": 0.2}}

    first = validate_config(config())
    daemon = Daemon(App(first, open_store(first.store.resolved_url()), clock))

    async def scenario() -> None:
        await daemon.start()
        try:
            old_udp = daemon.sources[0]
            second = validate_config({**config(bruteforce={"failures": 3}),
                                      "sources": {"syslog_udp": ["127.0.0.1:0"], "flush_s": 0.3}})
            assert await daemon.reload(lambda: second)
            assert daemon.config is second and daemon.app.config is second
            assert daemon.bound["tcp"] == []  # the TCP listener is gone, the UDP one bound again
            assert daemon.sources[0] is not old_udp and len(daemon.sources) == 1
            new_port = daemon.bound["udp"][0][1]
            await asyncio.get_running_loop().run_in_executor(None, _send_failures, new_port, "192.0.2.61", 4)
            deadline = time.monotonic() + 20
            while daemon.incidents_written == 0:
                assert time.monotonic() < deadline, "no incident after the reload"
                await asyncio.sleep(0.05)
            assert daemon.reloads == 1 and daemon.reload_failures == 0
            # Refused: the running sources and config stay.
            assert not await daemon.reload(lambda: validate_config({"detectors": {"bruteforce": {"failures": 0}}}))
            assert daemon.config is second and daemon.reload_failures == 1
        finally:
            await daemon.stop()

    asyncio.run(scenario())
    daemon.app.store.close()
