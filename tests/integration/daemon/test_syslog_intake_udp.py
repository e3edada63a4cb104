"""Syslog over UDP: drained a batch per wakeup, a sized receive buffer, kernel drops counted.

Every datagram sent is either received or counted in `kernel_drops`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest
from support.syslog_intake import Collector, bsd, until

from watchstander.agent.daemon.sources import Sink
from watchstander.agent.daemon.syslog import SyslogUdp

pytestmark = pytest.mark.integration


class _Batches(Collector):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __call__(self, events: Any) -> None:
        self.calls += 1
        super().__call__(events)


def _run(clock: Any, scenario: Any, rcvbuf: int = 8 << 20, max_message: int = 64 * 1024) -> tuple[SyslogUdp, _Batches]:
    got = _Batches()
    source = SyslogUdp("127.0.0.1:0", clock, max_message, rcvbuf)

    async def main() -> None:
        await source.start(Sink(asyncio.get_running_loop(), got))
        try:
            assert source.bound is not None
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                await scenario(source, tx, source.bound, got)
        finally:
            await source.stop()

    asyncio.run(main())
    return source, got


def test_a_burst_beyond_the_buffer_is_received_or_counted_as_kernel_drops(clock: Any) -> None:
    """The loop is busy while 5,000 datagrams arrive at a 64 KiB buffer: received + kernel_drops == sent."""

    async def scenario(source: SyslogUdp, tx: socket.socket, addr: Any, got: _Batches) -> None:
        for i in range(5000):  # sent while the loop cannot read
            tx.sendto(bsd(i), addr)
        await asyncio.sleep(0.2)

    source, got = _run(clock, scenario, rcvbuf=64 * 1024)
    assert source.counters["kernel_drops"] > 0
    assert source.counters["datagrams"] == len(got.events)
    assert len(got.events) + source.counters["kernel_drops"] == 5000


def test_the_socket_is_drained_in_batches(clock: Any) -> None:
    """1,000 queued datagrams are read and parsed in one or two batches, not one callback each."""

    async def scenario(source: SyslogUdp, tx: socket.socket, addr: Any, got: _Batches) -> None:
        for i in range(1000):
            tx.sendto(bsd(i), addr)
        await until(lambda: len(got.events) >= 1000)

    source, got = _run(clock, scenario)
    assert sorted(got.raws()) == sorted(f"message {i}" for i in range(1000))
    assert got.calls <= 2 and source.counters["kernel_drops"] == 0


def test_the_receive_buffer_granted_is_reported_and_a_short_one_warned(clock: Any, caplog: Any) -> None:
    """SO_RCVBUF from config; the kernel caps it at net.core.rmem_max, and the log says which sysctl to raise."""
    with open("/proc/sys/net/core/rmem_max", encoding="ascii") as fh:
        rmem_max = int(fh.read())

    async def scenario(source: SyslogUdp, tx: socket.socket, addr: Any, got: _Batches) -> None:
        return None

    with caplog.at_level(logging.WARNING):
        source, _ = _run(clock, scenario, rcvbuf=rmem_max * 4)
    assert source.rcvbuf is not None and source.rcvbuf // 2 <= rmem_max
    assert any("net.core.rmem_max" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        source, _ = _run(clock, scenario, rcvbuf=64 * 1024)
    assert source.rcvbuf is not None and source.rcvbuf >= 64 * 1024
    assert not caplog.records
    assert f"rcvbuf {source.rcvbuf}" in source.describe()


def test_overlong_and_multi_line_datagrams(clock: Any) -> None:
    """A datagram is cut at max_message (counted); a datagram holding several lines gives several messages."""

    async def scenario(source: SyslogUdp, tx: socket.socket, addr: Any, got: _Batches) -> None:
        tx.sendto(bsd(1) + b" " + b"z" * 5000, addr)
        tx.sendto(bsd(2) + b"\n" + bsd(3) + b"\n", addr)
        await until(lambda: len(got.events) >= 3)
        await asyncio.sleep(0.05)

    source, got = _run(clock, scenario, max_message=1024)
    raws = got.raws()
    assert len(raws) == 3 and len(raws[0]) < 1024 and raws[1:] == ["message 2", "message 3"]
    assert source.counters["overlong"] == 1 and source.counters["datagrams"] == 2
