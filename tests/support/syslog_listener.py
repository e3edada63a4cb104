"""Run the daemon's TCP syslog listener alone, under a given RLIMIT_NOFILE (the service's 1,024).

argv: NOFILE TCP_INTAKE_JSON. Prints the bound port, then answers each "stats" line on stdin with
one JSON line: the source's counters, the events received and the descriptors open.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from watchstander.agent.config.syslog_intake import TcpIntake
from watchstander.agent.daemon.syslog import SyslogTcp


class Sink:
    """The two things a source uses of the daemon's Sink (importing the daemon would pull in the whole agent)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, feed: Callable[[Iterable[object]], None]) -> None:
        self.loop = loop
        self.feed = feed


async def main(tcp: TcpIntake) -> None:
    """Listen, report the port, answer stats until stdin closes."""
    loop = asyncio.get_running_loop()
    received = 0

    def feed(events: Iterable[object]) -> None:
        nonlocal received
        received += sum(1 for _ in events)

    source = SyslogTcp("127.0.0.1:0", lambda: datetime.now(UTC), 64 * 1024, tcp)
    await source.start(Sink(loop, feed))
    print(source.bound[0][1], flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"stats":
            out = dict(source.counters, received=received, fds=len(os.listdir("/proc/self/fd")),
                       open=source.open_connections, cap=source.cap)
            print(json.dumps(out), flush=True)
    await source.stop()


if __name__ == "__main__":
    nofile = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    asyncio.run(main(TcpIntake.model_validate(json.loads(sys.argv[2]))))
