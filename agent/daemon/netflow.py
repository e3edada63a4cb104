"""NetFlow v5/v9 and IPFIX as a daemon source: one UDP collector per [sources] netflow entry.

Each collector keeps its own template state (per exporter address and source id / observation
domain, see connectors/netflow.py), drains its socket until it would block (at most UDP_BATCH
datagrams per wakeup, so the loop stays responsive) and hands every flow record to the detectors as
one `network_activity` Event. Exporters are unauthenticated: whatever a datagram holds is decoded
behind a barrier, counted when malformed, and never stops the collector.

Counters: datagrams, flows (also as messages, the metrics' intake family), skipped (malformed sets,
records without a template, ...), no_template, lost (what the exporters' sequence numbers say never
arrived), kernel_drops (the socket's receive buffer overflowed), errors (decoder raised: a bug,
logged). The templates held now are `decoder.templates` (a gauge, not a counter).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import Counter
from typing import TYPE_CHECKING

from watchstander.connectors.events import Event
from watchstander.connectors.netflow import FlowDecoder
from watchstander.connectors.skips import SkipCounter

from ..clock import Clock
from ..config.netflow import FlowIntake
from .udp_drops import SO_RXQ_OVFL, DrainedUdp

if TYPE_CHECKING:  # the wiring imports the whole agent; a collector alone starts without it
    from ..app.wiring import App
    from .sources import Sink, Source

log = logging.getLogger(__name__)

UDP_BATCH = 2048  # datagrams per wakeup at most (each may carry tens of flows)
MAX_DATAGRAM = 65535
_MAPPED = "::ffff:"



class NetflowUdp(DrainedUdp):
    """A NetFlow/IPFIX collector on one HOST:PORT."""

    def __init__(self, hostport: str, clock: Clock, intake: FlowIntake | None = None) -> None:
        intake = intake or FlowIntake()
        self.name = f"netflow:{hostport}"
        self.hostport = hostport
        self.clock = clock
        self.skips = SkipCounter(log, self.name)
        self.decoder = FlowDecoder(self.skips, clock, template_ttl_s=intake.template_ttl_s,
                                   max_domains=intake.max_domains, max_templates=intake.max_templates,
                                   pending_sets=intake.pending_sets)
        self.rcvbuf_wanted = intake.rcvbuf
        self.rcvbuf: int | None = None
        self.counters: Counter[str] = Counter()
        self.bound: tuple[str, int] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: Sink | None = None
        self._buf = bytearray(MAX_DATAGRAM + 1)
        self._ovfl = False
        self._timer: asyncio.TimerHandle | None = None

    async def start(self, sink: Sink) -> None:
        """Bind the socket, size its receive buffer and start draining it."""
        await self._listen(sink)

    def describe(self) -> str:
        """Where it listens, and the receive buffer it got."""
        return f"netflow/ipfix udp {self.bound} (rcvbuf {self.rcvbuf})"

    def _drain(self) -> None:
        sock, sink = self._sock, self._sink
        if sock is None or sink is None:
            return
        buf = self._buf
        view = memoryview(buf)
        events: list[Event] = []
        count = 0
        now = self.clock().timestamp()
        try:
            if self._ovfl:
                # The first datagram of a wakeup carries the kernel's cumulative drop count.
                n, anc, _, addr = sock.recvmsg_into([buf], 64)
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                        drops = struct.unpack("=I", value[:4])[0]
                        self.counters["kernel_drops"] = max(self.counters["kernel_drops"], drops)
                count = 1
                self._decode(view[:n].tobytes(), addr, now, events)
            recvfrom_into = sock.recvfrom_into
            while count < UDP_BATCH:
                n, addr = recvfrom_into(buf)
                count += 1
                self._decode(view[:n].tobytes(), addr, now, events)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            log.warning("%s: receive failed: %s", self.name, exc)
        finally:
            view.release()
        self._count(count)
        if events:
            sink.feed(events)

    def _decode(self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int], now: float,
                events: list[Event]) -> None:
        exporter = addr[0].removeprefix(_MAPPED)  # a dual-stack socket shows an IPv4 exporter as ::ffff:a.b.c.d
        try:
            events.extend(self.decoder.decode(data, exporter, now))
        except Exception:  # the barrier around one datagram (STYLE rule 2): decode() is meant never to raise
            self.counters["errors"] += 1
            log.exception("%s: decoder failed on a datagram from %s", self.name, exporter)

    def _count(self, datagrams: int) -> None:
        counters, decoded = self.counters, self.decoder.counters
        counters["datagrams"] += datagrams
        counters["messages"] = counters["flows"] = decoded["flows"]  # "messages": the metrics' well-known intake
        counters["lost"] = decoded["lost"]
        counters["skipped"] = self.skips.total
        counters["no_template"] = self.skips.counts["no template"]


def netflow_sources(app: App) -> list[Source]:
    """One collector per [sources] netflow entry, with the template limits of [sources.flow]."""
    src = app.config.sources
    return [NetflowUdp(hp, app.clock, src.flow) for hp in src.netflow]
