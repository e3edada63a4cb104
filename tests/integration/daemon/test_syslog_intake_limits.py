"""Syslog over TCP under attack: connection caps below RLIMIT_NOFILE, idle and slowloris senders cut."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

import pytest
from support.syslog_intake import Collector, ListenerProcess, bsd, octet, tcp_send, until

from watchstander.agent.config.syslog_intake import TcpIntake
from watchstander.agent.daemon.sources import Sink
from watchstander.agent.daemon.syslog import LogLimiter, SyslogTcp

pytestmark = pytest.mark.integration


def _run(clock: Any, limits: TcpIntake, scenario: Any) -> Collector:
    got = Collector()

    async def main() -> None:
        source = SyslogTcp("127.0.0.1:0", clock, 64 * 1024, limits)
        await source.start(Sink(asyncio.get_running_loop(), got))
        try:
            await scenario(source, source.bound[0][1], got)
        finally:
            await source.stop()

    asyncio.run(main())
    return got


def test_1100_idle_connections_under_the_services_1024_descriptors(tmp_path: Any) -> None:
    """The red team's 1,100 idle connections: no EMFILE storm, the listener answers, a new sender is served."""
    listener = ListenerProcess(1024, {"max_connections": 4096, "max_per_source": 4096, "idle_timeout_s": 60})
    idle: list[socket.socket] = []
    try:
        assert listener.stats()["cap"] < 1024 - 64  # derived from RLIMIT_NOFILE, smaller than max_connections
        for _ in range(1100):
            idle.append(socket.create_connection(("127.0.0.1", listener.port), timeout=10))
        time.sleep(1.2)  # the idle ones become evictable
        stats = listener.stats()
        assert stats["open"] <= stats["cap"] and stats["fds"] < 1024
        assert stats["refused_cap"] + stats["evicted_idle"] >= 1100 - stats["cap"]
        tcp_send(listener.port, b"".join(octet(bsd(i)) for i in range(10)))
        deadline = time.monotonic() + 10
        while (stats := listener.stats())["received"] < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stats["received"] == 10
        assert stats["accept_errors"] == 0
    finally:
        for s in idle:
            s.close()
        err = listener.close()
    assert "Too many open files" not in err and "Traceback" not in err
    assert len(err) < 10_000  # rate-limited, not a storm


def test_per_source_cap_refuses_the_excess_and_serves_other_addresses(clock: Any) -> None:
    """One address holding max_per_source connections cannot take more; another address still can."""

    async def scenario(source: SyslogTcp, port: int, got: Collector) -> None:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # accepted and closed at once
        writer.close()
        await asyncio.to_thread(tcp_send, port, octet(bsd(7)), 0, "127.0.0.2")
        await until(lambda: len(got.events) == 1)
        assert source.counters["refused_per_source"] == 1
        for _, w in held:
            w.close()

    got = _run(clock, TcpIntake(max_per_source=3), scenario)
    assert got.raws() == ["message 7"]


def test_an_idle_connection_is_closed_after_the_timeout(clock: Any) -> None:
    """A sender that says nothing for idle_timeout_s is closed and counted."""

    async def scenario(source: SyslogTcp, port: int, got: Collector) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(octet(bsd(1)))
        await writer.drain()
        t0 = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert 0.2 < time.monotonic() - t0 < 3
        writer.close()
        assert source.counters["idle_closed"] == 1 and source.open_connections == 0

    got = _run(clock, TcpIntake(idle_timeout_s=0.3), scenario)
    assert got.raws() == ["message 1"]


def test_a_slowloris_sender_is_cut(clock: Any) -> None:
    """A byte every 50 ms is never idle, but its message never completes: cut after frame_timeout_s."""

    async def scenario(source: SyslogTcp, port: int, got: Collector) -> None:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(octet(bsd(1)) + b"100 <13>")
        t0 = time.monotonic()
        with pytest.raises((ConnectionError, AssertionError)):
            for _ in range(200):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)
                assert source.counters["slow_closed"] == 0
        assert time.monotonic() - t0 < 3
        assert source.counters["slow_closed"] == 1 and source.counters["idle_closed"] == 0
        writer.close()

    got = _run(clock, TcpIntake(idle_timeout_s=5, frame_timeout_s=0.4), scenario)
    assert got.raws() == ["message 1"]


def test_repeated_errors_log_one_line_per_kind_with_the_suppressed_count(caplog: Any) -> None:
    """A flood of the same error is one line per interval, and the next line says how many were hidden."""
    now = [0.0]
    limiter = LogLimiter(logging.getLogger("test.limiter"), 10.0, lambda: now[0])
    with caplog.at_level(logging.WARNING, "test.limiter"):
        for _ in range(1000):
            limiter.log(logging.WARNING, "cap", "refused %s", "x")
        limiter.log(logging.WARNING, "other", "another kind")
        now[0] = 11.0
        limiter.log(logging.WARNING, "cap", "refused %s", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "refused x", "another kind", "refused y (999 more like it suppressed)"]
