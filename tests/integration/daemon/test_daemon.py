"""The daemon with real sockets on loopback and a real followed file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.daemon.daemon import Daemon
from watchstander.agent.store.incidents import IncidentStore
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration


def brute_force_lines(src: str, n: int = 12, host: str = "bastion") -> list[bytes]:
    return [f"<38>Nov 27 11:{i // 60:02d}:{i % 60:02d} {host} sshd[{100 + i}]: Failed password for root "
            f"from {src} port {40000 + i} ssh2".encode() for i in range(n)]


async def _wait_for(predicate, timeout: float = 30.0) -> None:  # generous: CI shares two cores  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_daemon_ingests_udp_tcp_and_followed_files(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    eve = tmp_path / "eve.json"
    eve.write_text("", encoding="utf-8")
    cfg = validate_config({
        "store": {"url": f"sqlite:///{tmp_path / 'w.db'}"},
        "sources": {"syslog_udp": ["127.0.0.1:0"], "syslog_tcp": ["127.0.0.1:0"], "files": [str(eve)],
                    "flush_s": 0.2},
    })
    store = open_store(cfg.store.resolved_url())

    async def scenario() -> None:
        daemon = Daemon(App(cfg, store, clock))
        await daemon.start()
        udp_port = daemon.bound["udp"][0][1]
        tcp_port = daemon.bound["tcp"][0][1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for line in brute_force_lines("192.0.2.10"):
                s.sendto(line, ("127.0.0.1", udp_port))
            s.sendto(b"\xff\xfe not syslog at all", ("127.0.0.1", udp_port))
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
        for line in brute_force_lines("192.0.2.20"):
            writer.write(f"{len(line)} ".encode() + line + b"\n")  # RFC 6587 octet counting
        await writer.drain()
        writer.close()
        alert = {"timestamp": "2026-11-27T11:00:00.000000+0000", "event_type": "alert", "src_ip": "203.0.113.9",
                 "dest_ip": "10.0.0.25", "src_port": 1, "dest_port": 80, "proto": "TCP",
                 "alert": {"signature": "ET EXPLOIT test", "signature_id": 9, "category": "x", "severity": 1}}
        with open(eve, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(alert) + "\n")
        repo = IncidentStore(store, clock)
        await _wait_for(lambda: len(repo.list()) >= 3)
        await daemon.stop()

    asyncio.run(scenario())
    incidents = IncidentStore(store, clock).list()
    attackers = {a for i in incidents for a in i.entities().get("attacker", [])}
    assert {"192.0.2.10", "192.0.2.20", "203.0.113.9"} <= attackers
    store.close()


def test_later_activity_updates_the_same_incident(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"},
                           "sources": {"syslog_udp": ["127.0.0.1:0"], "flush_s": 0.1}})
    store = open_store(cfg.store.resolved_url())

    async def scenario() -> None:
        daemon = Daemon(App(cfg, store, clock))
        await daemon.start()
        lines = brute_force_lines("192.0.2.30", 40)
        daemon.feed(daemon_events(lines[:15], clock))
        await daemon.flush()
        daemon.feed(daemon_events(lines[15:], clock))
        await daemon.flush()
        await daemon.stop()

    asyncio.run(scenario())
    (inc,) = IncidentStore(store, clock).list()
    assert inc.counts()["failed_logins"] == 40
    store.close()


def daemon_events(lines, clock):  # type: ignore[no-untyped-def]
    from watchstander.connectors.syslog import SyslogSource

    return SyslogSource("test", clock).events(lines)


def test_run_command_as_a_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = tmp_path / "w.toml"
    import grp
    import tempfile

    sock_dir = tempfile.mkdtemp(dir="/tmp")  # AF_UNIX paths must stay short
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n[sources]\nsyslog_udp = ["127.0.0.1:{port}"]\n'
                   f'flush_s = 0.2\n[control]\nsocket = "{sock_dir}/c.sock"\n'
                   f'socket_group = "{grp.getgrgid(os.getgid()).gr_name}"\n', encoding="utf-8")
    with subprocess.Popen([sys.executable, "-m", "watchstander.agent.cli.main", "run", "--config", str(cfg)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        _drive(proc, port, sock_dir)
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    from watchstander.agent.clock import system_clock

    incidents = IncidentStore(store, system_clock).list()
    store.close()
    assert any("192.0.2.40" in i.entities().get("attacker", []) for i in incidents)


def _drive(proc: subprocess.Popen[bytes], port: int, sock_dir: str) -> None:
    try:
        deadline = time.monotonic() + 20
        assert proc.stderr is not None
        while b"listening: syslog" not in proc.stderr.readline():
            assert time.monotonic() < deadline and proc.poll() is None, "daemon did not start"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for line in brute_force_lines("192.0.2.40"):
                s.sendto(line, ("127.0.0.1", port))
        from watchstander.agent.control.client import ControlClient

        assert ControlClient(Path(sock_dir) / "c.sock", timeout=5).call("ping", {}) is not None
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_starts_without_its_postgresql_server_and_spools_what_it_finds(tmp_path: Path) -> None:
    """No server answers on the configured port: `run` starts anyway, detects, and keeps findings on disk."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socket.socket() as closed:  # a loopback TCP port nothing listens on once this socket is closed
        closed.bind(("127.0.0.1", 0))
        pg_port = closed.getsockname()[1]
    import grp
    import sqlite3
    import tempfile

    sock_dir = tempfile.mkdtemp(dir="/tmp")
    spool = tmp_path / "spool.db"
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[store]\nurl = "postgresql+psycopg://sensor@127.0.0.1:{pg_port}/watchstander"\n'
                   f'spool = "{spool}"\n[sources]\nsyslog_udp = ["127.0.0.1:{port}"]\nflush_s = 0.2\n'
                   f'[control]\nsocket = "{sock_dir}/c.sock"\nsocket_group = "{grp.getgrgid(os.getgid()).gr_name}"\n'
                   f'[audit]\nsigning_key = "{tmp_path / "seal.key"}"\npublic_key = "{tmp_path / "seal.pub"}"\n'
                   f'checkpoints = "{tmp_path / "checkpoints.jsonl"}"\n', encoding="utf-8")
    with subprocess.Popen([sys.executable, "-m", "watchstander.agent.cli.main", "run", "--config", str(cfg)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        _drive(proc, port, sock_dir)
        assert proc.stderr is not None
        said = proc.stderr.read().decode("utf-8", "replace")
    conn = sqlite3.connect(spool)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        spooled = conn.execute("SELECT count(*) FROM entries").fetchone()[0] if "entries" in tables else None
    finally:
        conn.close()
    assert spooled, f"nothing spooled (tables {sorted(tables)}); the daemon said:\n{said[-3000:]}"
