"""Syslog over the network: UDP datagrams and TCP streams (LF-delimited or RFC 6587 octet-counted).

Senders are unauthenticated: every record is decoded inside a barrier (a record the decoder cannot
handle is counted and skipped), and a TCP connection that fails is logged and closed alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from watchstander.connectors.barrier import guarded_events
from watchstander.connectors.syslog import SyslogSource

from ..app.wiring import App
from ..clock import Clock
from .sources import Sink, Source, split_host_port

log = logging.getLogger(__name__)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: SyslogUdp, sink: Sink) -> None:
        self.owner = owner
        self.sink = sink

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.counters["datagrams"] += 1
        self.sink.feed(guarded_events(self.owner.decoder, data.splitlines() or [data], source=self.owner.name))


class SyslogUdp:
    """Syslog datagrams on one HOST:PORT."""

    def __init__(self, hostport: str, clock: Clock) -> None:
        self.name = f"syslog-udp:{hostport}"
        self.hostport = hostport
        self.decoder = SyslogSource(self.name, clock)
        self.counters: Counter[str] = Counter()
        self.bound: tuple[str, int] | None = None
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, sink: Sink) -> None:
        """Bind the socket and start receiving."""
        host, port = split_host_port(self.hostport)
        transport, _ = await sink.loop.create_datagram_endpoint(lambda: _Datagrams(self, sink), local_addr=(host, port))
        self._transport = transport
        self.bound = transport.get_extra_info("sockname")[:2]

    async def stop(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()

    def describe(self) -> str:
        """Where it listens."""
        return f"syslog udp {self.bound}"


class SyslogTcp:
    """Syslog streams on one HOST:PORT, one decoder per connection."""

    def __init__(self, hostport: str, clock: Clock, max_message: int) -> None:
        self.name = f"syslog-tcp:{hostport}"
        self.hostport = hostport
        self.clock = clock
        self.max_message = max_message
        self.counters: Counter[str] = Counter()
        self.bound: list[tuple[str, int]] = []
        self._server: asyncio.Server | None = None
        self._sink: Sink | None = None

    async def start(self, sink: Sink) -> None:
        """Listen and start accepting connections."""
        self._sink = sink
        host, port = split_host_port(self.hostport)
        self._server = await asyncio.start_server(self._client, host, port, limit=self.max_message)
        self.bound = [s.getsockname()[:2] for s in self._server.sockets]

    async def stop(self) -> None:
        """Stop accepting connections."""
        if self._server is not None:
            self._server.close()

    def describe(self) -> str:
        """Where it listens."""
        return f"syslog tcp {self.bound}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._sink is not None
        peer = writer.get_extra_info("peername")
        decoder = SyslogSource(f"syslog-tcp:{peer[0] if peer else '?'}", self.clock)
        self.counters["connections"] += 1
        try:
            while not reader.at_eof():
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    line = exc.partial
                except asyncio.LimitOverrunError as exc:
                    # An overlong frame: keep what fits, drop the rest of it.
                    line = await reader.readexactly(exc.consumed)
                    decoder.skips.skip("overlong TCP frame truncated", str(peer))
                if not line:
                    break
                self._sink.feed(guarded_events(decoder, [strip_octet_count(line)], source=decoder.source))
        except (ConnectionError, OSError) as exc:
            log.info("syslog tcp client %s: %s", peer, exc)
        except Exception:  # the barrier around one connection (STYLE rule 2): it ends, the listener goes on
            self.counters["errors"] += 1
            log.exception("syslog tcp client %s failed; closing its connection", peer)
        finally:
            writer.close()


def strip_octet_count(frame: bytes) -> bytes:
    """Drop an RFC 6587 octet-counting prefix ("123 <34>1 ...") if present."""
    head, sep, rest = frame.partition(b" ")
    if sep and head.isdigit() and rest[:1] == b"<":
        return rest
    return frame


def udp_sources(app: App) -> list[Source]:
    """One UDP listener per [sources] syslog_udp entry."""
    return [SyslogUdp(hp, app.clock) for hp in app.config.sources.syslog_udp]


def tcp_sources(app: App) -> list[Source]:
    """One TCP listener per [sources] syslog_tcp entry."""
    return [SyslogTcp(hp, app.clock, app.config.sources.max_message) for hp in app.config.sources.syslog_tcp]
