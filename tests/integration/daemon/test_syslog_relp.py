"""Syslog over RELP from Debian's rsyslog (omrelp): every message arrives, also across a listener restart."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.syslog_intake import Collector, until

from watchstander.agent.config.load import validate_config
from watchstander.agent.daemon.relp import SyslogRelp, relp_sources
from watchstander.agent.daemon.sources import Sink
from watchstander.connectors.relp import frame

pytestmark = pytest.mark.integration

RSYSLOGD = "/usr/sbin/rsyslogd"


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Rsyslog:
    """rsyslogd in the foreground: UDP in on loopback, every message forwarded with omrelp, queued on disk."""

    def __init__(self, folder: Path, relp_port: int) -> None:
        if not Path(RSYSLOGD).exists() or not Path("/usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so").exists():
            pytest.skip("needs Debian's rsyslog and rsyslog-relp (apt-get install rsyslog rsyslog-relp)")
        self.udp_port = _free_port(socket.SOCK_DGRAM)
        work = folder / "work"
        work.mkdir()
        conf = folder / "rsyslog.conf"
        conf.write_text(f"""
global(workDirectory="{work}")
module(load="imudp")
module(load="omrelp")
input(type="imudp" address="127.0.0.1" port="{self.udp_port}")
action(type="omrelp" target="127.0.0.1" port="{relp_port}" template="RSYSLOG_SyslogProtocol23Format"
       queue.type="LinkedList" queue.filename="relpq" queue.saveOnShutdown="on"
       action.resumeRetryCount="-1" action.resumeInterval="1")
""")
        check = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=30,
                               check=False)
        if check.returncode != 0:
            pytest.skip(f"rsyslogd refused the test config: {check.stderr.strip()[:300]}")
        with open(folder / "rsyslogd.log", "wb") as out:  # its own complaints, if a test needs to look
            self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(folder / "rsyslog.pid")],
                                         stdout=out, stderr=subprocess.STDOUT)

    async def ready(self, got: Collector, timeout: float = 60) -> None:
        """Probe until a message makes the whole trip (rsyslogd starts its UDP input after a while)."""
        deadline = time.monotonic() + timeout
        while not any("relp probe" in r for r in got.raws()):
            if time.monotonic() > deadline:
                raise TimeoutError("rsyslogd forwarded nothing")
            self.send(["<13>Dec  1 12:00:00 web1 app[7]: relp probe"])
            await asyncio.sleep(0.2)

    def send(self, lines: list[str]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for line in lines:
                s.sendto(line.encode(), ("127.0.0.1", self.udp_port))
                time.sleep(0.0005)  # rsyslog's UDP input must not overflow its socket buffer here

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _lines(start: int, count: int) -> list[str]:
    return [f"<13>Dec  1 12:00:00 web1 app[7]: relp message {i}" for i in range(start, start + count)]


def _numbers(got: Collector) -> list[int]:
    return [int(r.rsplit(" ", 1)[1]) for r in got.raws() if "relp message" in r]


def test_rsyslog_omrelp_delivers_everything_even_across_a_listener_restart(tmp_path: Path, clock: Any) -> None:
    port = _free_port()
    got = Collector()
    rsyslog = Rsyslog(tmp_path, port)
    try:
        async def main() -> None:
            sink = Sink(asyncio.get_running_loop(), got)
            first = SyslogRelp(f"127.0.0.1:{port}", clock, 64 * 1024)
            await first.start(sink)
            await rsyslog.ready(got)
            await asyncio.to_thread(rsyslog.send, _lines(0, 300))
            try:
                await until(lambda: len(set(_numbers(got))) >= 300, timeout=60)
            except TimeoutError:
                raise AssertionError(f"{len(set(_numbers(got)))} of 300; {dict(first.counters)}; {got.raws()[:2]}") from None
            assert first.counters["messages"] >= 300 and not first.counters["framing_errors"]
            await first.stop()  # the daemon goes away; rsyslog keeps what it cannot deliver
            await asyncio.to_thread(rsyslog.send, _lines(300, 200))
            await asyncio.sleep(1.0)
            second = SyslogRelp(f"127.0.0.1:{port}", clock, 64 * 1024)
            await second.start(sink)  # back: rsyslog resumes and resends what was not acknowledged
            try:
                await until(lambda: len(set(_numbers(got))) >= 500, timeout=90)
            finally:
                await second.stop()

        asyncio.run(main())
    finally:
        rsyslog.stop()
    assert set(_numbers(got)) == set(range(500))  # every message; a resent one may come twice, none is lost


def test_a_hand_rolled_session_is_acknowledged_and_garbage_gets_serverclose(clock: Any) -> None:
    got = Collector()
    replies: dict[str, bytes] = {}

    async def main() -> None:
        source = SyslogRelp("127.0.0.1:0", clock, 4096)
        await source.start(Sink(asyncio.get_running_loop(), got))
        port = source.bound[0][1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(frame(1, "open", b"relp_version=0\ncommands=syslog")
                         + frame(2, "syslog", b"<13>Dec  1 12:00:00 h app: one") + frame(3, "close"))
            await writer.drain()
            replies["good"] = await asyncio.wait_for(reader.read(), 10)  # the server closes after close
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"1 syslog 99999999 x\n")
            await writer.drain()
            replies["bad"] = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert source.counters["framing_errors"] == 1
        finally:
            await source.stop()

    asyncio.run(main())
    assert replies["good"].startswith(b"1 rsp ") and b"2 rsp 6 200 OK\n3 rsp 0\n" in replies["good"]
    assert replies["bad"] == b"0 serverclose 0\n"
    assert [r.strip() for r in got.raws()] == ["one"]


def test_syslog_relp_sources_come_from_the_config(tmp_path: Path, clock: Any) -> None:
    from watchstander.agent.app.wiring import App
    from watchstander.agent.store.schema import open_store

    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"},
                           "sources": {"syslog_udp": [], "syslog_relp": ["127.0.0.1:0", "[::1]:0"]}})
    app = App(cfg, open_store(cfg.store.resolved_url()), clock)
    try:
        sources = relp_sources(app)
        assert [s.describe().split(" [")[0] for s in sources] == ["syslog relp"] * 2
    finally:
        app.close()
        app.store.close()

