"""Syslog over TCP: both RFC 6587 framings detected per connection, every message sent accounted for."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest
from support.syslog_intake import Collector, bsd, octet, tcp_send, until

from watchstander.agent.config.syslog_intake import TcpIntake
from watchstander.agent.daemon.sources import Sink
from watchstander.agent.daemon.syslog import SyslogTcp

pytestmark = pytest.mark.integration


def _run(clock: Any, scenario: Any, limits: TcpIntake | None = None, max_message: int = 64 * 1024) -> Collector:
    got = Collector()

    async def main() -> None:
        source = SyslogTcp("127.0.0.1:0", clock, max_message, *([limits] if limits else []))
        await source.start(Sink(asyncio.get_running_loop(), got))
        try:
            await scenario(source, source.bound[0][1], got)
        finally:
            await source.stop()

    asyncio.run(main())
    return got


def test_octet_counted_messages_all_arrive(clock: Any) -> None:
    """The deployment's bug: 200 of 200 octet-counted messages were lost as one overlong line."""
    msgs = [bsd(i) for i in range(200)]

    async def scenario(source: SyslogTcp, port: int, got: Collector) -> None:
        await asyncio.to_thread(tcp_send, port, b"".join(octet(m) for m in msgs))
        await until(lambda: len(got.events) >= 200)

    got = _run(clock, scenario)
    assert sorted(got.raws()) == sorted(f"message {i}" for i in range(200))


def test_mixed_sizes_split_across_segments_and_both_framings_on_separate_connections(clock: Any) -> None:
    """Frames of 30 B to 60 KiB, written a few bytes at a time, next to an LF-framed connection."""
    sizes = [30, 1000, 60_000, 5, 4096, 17]
    msgs = [bsd(i) + b" " + b"x" * n for i, n in enumerate(sizes)]
    lines = [bsd(100 + i) for i in range(50)]

    async def scenario(source: SyslogTcp, port: int, got: Collector) -> None:
        await asyncio.gather(
            asyncio.to_thread(tcp_send, port, b"".join(octet(m) for m in msgs), 7),
            asyncio.to_thread(tcp_send, port, b"".join(m + b"\n" for m in lines), 11),
        )
        await until(lambda: len(got.events) >= len(msgs) + len(lines))

    got = _run(clock, scenario)
    raws = got.raws()
    assert len(raws) == len(msgs) + len(lines)
    assert {r.split(" ")[1] for r in raws} == {str(i) for i in range(len(sizes))} | {str(100 + i) for i in range(50)}


@pytest.mark.parametrize("bogus", [b"12x <13>hello", b"99999999 <13>x"])
def test_a_bogus_length_is_counted_and_the_connection_closed(clock: Any, bogus: bytes) -> None:
    """Non-digits or a length above max_message: the frames before it are kept, the connection ends."""

    async def scenario(source: SyslogTcp, port: int, got: Collector) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(octet(bsd(1)) + bogus)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the listener
        writer.close()
        await until(lambda: source.counters["framing_errors"] == 1)

    got = _run(clock, scenario)
    assert got.raws() == ["message 1"]


def test_an_endless_line_is_bounded_while_reading(clock: Any) -> None:
    """Megabytes with no LF: one truncated message, counted; the listener never holds more than max_message."""

    async def scenario(source: SyslogTcp, port: int, got: Collector) -> None:
        payload = bsd(1) + b"y" * 3_000_000 + b"\n" + bsd(2) + b"\n"
        await asyncio.to_thread(tcp_send, port, payload, 65536)
        await until(lambda: len(got.events) >= 2)
        assert source.counters["overlong"] == 1

    got = _run(clock, scenario, max_message=4096)
    assert len(got.events) == 2 and got.raws()[1] == "message 2"


@pytest.mark.parametrize("octet_count", [True, False])
def test_real_logger_both_framings(clock: Any, octet_count: bool) -> None:
    """util-linux logger --tcp, with and without --octet-count: every message arrives."""
    logger = shutil.which("logger")
    if logger is None:
        pytest.skip("util-linux logger is not installed")

    async def scenario(source: SyslogTcp, port: int, got: Collector) -> None:
        args = [logger, "--tcp", "-n", "127.0.0.1", "-P", str(port), "-t", "wstest"]
        if octet_count:
            args.append("--octet-count")
        proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE)
        await proc.communicate(b"".join(f"line {i}\n".encode() for i in range(200)))
        assert proc.returncode == 0
        await until(lambda: len(got.events) >= 200)

    got = _run(clock, scenario)
    assert sorted(got.raws()) == sorted(f"line {i}" for i in range(200))
