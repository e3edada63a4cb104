"""Syslog over the network: UDP datagrams, TCP streams (RFC 6587, both framings) and TLS (RFC 5425).

Senders are unauthenticated: every record is decoded inside a barrier (a record the decoder cannot
handle is counted and skipped), and a connection that fails is logged and closed alone.

UDP is drained until the socket would block, into one preallocated buffer, and parsed a batch per
wakeup; the receive buffer comes from [sources.udp] rcvbuf and the kernel's drops are counted.
Streams are accepted by the listener itself so that caps (overall, per sender address, and below
RLIMIT_NOFILE) are enforced before a transport exists, and an idle or slow connection is cut.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import socket
import ssl
import struct
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, cast

from watchstander.connectors.barrier import guarded
from watchstander.connectors.events import Event
from watchstander.connectors.skips import SkipCounter
from watchstander.connectors.syslog import TRUNCATED, FramingError, StreamFramer, SyslogSource, decode_line
from watchstander.connectors.syslog_messages import SyslogNeeds

from ..clock import Clock
from ..config.syslog_intake import TcpIntake, TlsIntake
from ..detection.pipeline import registered_syslog_needs
from .sources import split_host_port
from .udp_drops import SO_RXQ_OVFL, DrainedUdp

if TYPE_CHECKING:  # the wiring imports the whole agent; a listener alone starts without it
    from ..app.wiring import App
    from .sources import Sink, Source

log = logging.getLogger(__name__)

UDP_BATCH = 4096  # datagrams per wakeup at most, so the loop (and the control socket) stays responsive
ACCEPT_BATCH = 128
EVICT_IDLE_S = 1.0  # when full, a connection silent this long gives way to a new sender
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}



class LogLimiter:
    """At most one log line per kind per interval, with the number suppressed since the last one."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._interval = interval_s
        self._monotonic = monotonic
        self._last: dict[str, float] = {}
        self.suppressed: Counter[str] = Counter()

    def log(self, level: int, kind: str, msg: str, *args: object) -> None:
        """Log `msg` unless `kind` was logged within the interval (then count it as suppressed)."""
        now = self._monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self.suppressed[kind] += 1
            return
        self._last[kind] = now
        skipped = self.suppressed.pop(kind, 0)
        suffix = f" ({skipped} more like it suppressed)" if skipped else ""
        self._log.log(level, msg + suffix, *args)


def decode_batch(raws: list[bytes], prefilter: Callable[[str, int], str] | None = None) -> list[str]:
    """Decode a batch of messages (UTF-8) in one call, one line each; one by one if one holds an LF or
    invalid UTF-8. With `prefilter`, the joined text passes through it (SyslogSource.prefilter)."""
    blob = b"\n".join(raws)
    if blob.count(b"\n") != len(raws) - 1:  # a message holding an LF stays one line
        return [decode_line(r) for r in raws]
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return [decode_line(r) for r in raws]
    return (text if prefilter is None else prefilter(text, max(map(len, raws)))).split("\n")


def _skipped(skips: SkipCounter) -> int:
    """Records the decoder dropped (a truncated line was still delivered)."""
    return int(sum(skips.counts.values()) - skips.counts[TRUNCATED])


def guarded_text_events(decoder: SyslogSource, lines: list[str], first_line: int = 1) -> Iterator[Event]:
    """Decode already-decoded text `lines` a batch at a time, behind the connectors' barrier."""
    return guarded(decoder.text_events, decoder.skips, lines, first_line, decoder.source)


class SyslogUdp(DrainedUdp):
    """Syslog datagrams on one HOST:PORT.

    Counters: datagrams, messages (lines handed to the decoder), overlong (datagrams cut at
    max_message), kernel_drops (dropped by the kernel, receive buffer full), skipped (decoder),
    unneeded (parsed, but needed by no detector: counted, no Event built; see `needs`).
    """

    def __init__(self, hostport: str, clock: Clock, max_message: int = 64 * 1024,
                 rcvbuf: int = 8 * 1024 * 1024, needs: SyslogNeeds | None = None) -> None:
        self.name = f"syslog-udp:{hostport}"
        self.hostport = hostport
        self.decoder = SyslogSource(self.name, clock, needs=needs)
        self.max_message = max_message
        self.rcvbuf_wanted = rcvbuf
        self.rcvbuf: int | None = None  # what the kernel granted (getsockopt, its doubled accounting)
        self.counters: Counter[str] = Counter()
        self.bound: tuple[str, int] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: Sink | None = None
        self._buf = bytearray(max_message + 1)
        self._lines = 0  # lines fed so far: the line numbers (event refs) run on across batches
        self._ovfl = False
        self._timer: asyncio.TimerHandle | None = None

    async def start(self, sink: Sink) -> None:
        """Bind the socket, size its receive buffer and start draining it."""
        await self._listen(sink)


    def describe(self) -> str:
        """Where it listens, and the receive buffer it got."""
        return f"syslog udp {self.bound} (rcvbuf {self.rcvbuf})"

    def _drain(self) -> None:
        sock, sink = self._sock, self._sink
        if sock is None or sink is None:
            return
        limit = self.max_message
        raws: list[bytes] = []
        append = raws.append
        if self._ovfl:
            # The first datagram of a wakeup carries the kernel's cumulative drop count.
            buf = self._buf
            try:
                n, anc, _, _ = sock.recvmsg_into([buf], 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("%s: receive failed: %s", self.name, exc)
                return
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    drops = struct.unpack("=I", value[:4])[0]
                    self.counters["kernel_drops"] = max(self.counters["kernel_drops"], drops)
            append(bytes(buf[:n]))
        recv, size = sock.recv, limit + 1
        try:
            # The whole per-datagram cost is this loop: checks and splitting run over the batch below.
            for _ in range(UDP_BATCH - len(raws)):
                append(recv(size))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            log.warning("%s: receive failed: %s", self.name, exc)
        if raws:
            self._deliver(raws, sink)

    def _deliver(self, raws: list[bytes], sink: Sink) -> None:
        """Count a batch of datagrams, cut the overlong ones, split them into lines and feed them."""
        counters = self.counters
        counters["datagrams"] += len(raws)
        limit = self.max_message
        longest = max(map(len, raws))
        if longest > limit:
            overlong = [i for i, raw in enumerate(raws) if len(raw) > limit]
            for i in overlong:
                raws[i] = raws[i][:limit]
            counters["overlong"] += len(overlong)
        blob = b"\n".join(raws)  # several lines in one datagram are split with the rest
        bound: int | None = longest  # bytes bound the characters of valid UTF-8, not of \xNN escapes
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            text = "\n".join(decode_line(raw) for raw in raws)
            bound = None
        decoder = self.decoder
        # The lines no detector needs are counted in one regex pass over the batch (each becomes a
        # mark the decoder passes over): the per-line loop below sees only the others.
        lines = list(filter(None, decoder.prefilter(text, bound).split("\n")))  # an empty line is no message
        if lines:
            counters["messages"] += len(lines)
            sink.feed(guarded_text_events(decoder, lines, self._lines + 1))
            self._lines += len(lines)
            counters["skipped"] = _skipped(decoder.skips)
            if decoder.unneeded:
                counters["unneeded"] = decoder.unneeded


class _Census:
    """The process's open syslog stream connections: descriptors are per process, so the caps are too."""

    def __init__(self) -> None:
        self.by_activity: OrderedDict[_Connection, None] = OrderedDict()  # least recently active first
        self.per_source: Counter[str] = Counter()

    @property
    def total(self) -> int:
        """Open connections in the process."""
        return len(self.by_activity)

    def add(self, conn: _Connection) -> None:
        """Count a connection just accepted."""
        self.by_activity[conn] = None
        self.per_source[conn.peer] += 1

    def forget(self, conn: _Connection) -> None:
        """Uncount a connection (idempotent)."""
        if conn in self.by_activity:
            del self.by_activity[conn]
            self.per_source[conn.peer] -= 1
            if self.per_source[conn.peer] <= 0:
                del self.per_source[conn.peer]


CENSUS = _Census()


def descriptor_cap(reserve: int) -> int:
    """How many connections fit under RLIMIT_NOFILE with `reserve` descriptors (and those open now) kept free."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    try:
        open_now = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_now = 32
    return max(1, soft - open_now - reserve)


class _Connection(asyncio.Protocol):
    """One sender's stream: framing detected on its first byte, messages fed in batches."""

    def __init__(self, listener: _StreamListener, peer: str, now: float) -> None:
        self.listener = listener
        self.peer = peer
        self.framer = StreamFramer(listener.max_message, octet_only=listener.octet_only)
        self.decoder = SyslogSource(f"{listener.kind}:{peer}", listener.clock, listener.skips, listener.needs)
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.last = now
        self.frame_started: float | None = None
        self.lines = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport (TCP or TLS)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        now = time.monotonic()
        self.last = now
        try:
            CENSUS.by_activity.move_to_end(self)
        except KeyError:
            pass  # already forgotten: it is being closed
        framer = self.framer
        before = framer.truncated
        frames = framer.feed(data)
        if framer.truncated != before:
            self.listener.counters["overlong"] += framer.truncated - before
        if not framer.pending:
            self.frame_started = None
        elif frames or self.frame_started is None:
            self.frame_started = now
        if frames:
            self._deliver(frames)
        if framer.error is not None:
            self.listener.counters["framing_errors"] += 1
            self.listener.limiter.log(logging.WARNING, "framing", "%s: %s from %s; connection closed",
                                      self.listener.name, framer.error, self.peer)
            self.close()

    def eof_received(self) -> bool | None:
        if self.closed or self.framer.error is not None:
            return False
        try:
            frames = self.framer.close()
        except FramingError:
            self.listener.counters["incomplete_frames"] += 1
            frames = []
        if frames:
            self._deliver(frames)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.listener.forget(self)

    def _deliver(self, frames: list[bytes]) -> None:
        listener = self.listener
        listener.counters["messages"] += len(frames)
        assert listener.sink is not None
        before = self.decoder.unneeded
        lines = decode_batch(frames, self.decoder.prefilter)
        listener.sink.feed(guarded_text_events(self.decoder, lines, self.lines + 1))
        self.lines += len(frames)
        listener.counters["skipped"] = _skipped(listener.skips)
        if self.decoder.unneeded != before:
            listener.counters["unneeded"] += self.decoder.unneeded - before

    def close(self) -> None:
        """Close now (abort: nothing more is read); the census forgets it at once."""
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
            elif self.task is not None:
                self.task.cancel()
        self.listener.forget(self)


class _StreamListener:
    """Accepts syslog streams itself: caps before a transport exists, a sweep for idle and slow senders.

    Counters: connections (served), refused_cap, refused_per_source, evicted_idle, idle_closed,
    slow_closed, accept_errors, framing_errors, incomplete_frames, overlong, messages, skipped,
    unneeded (as for UDP), and for TLS tls_failed (handshake refused or timed out).
    """

    kind = "syslog-stream"
    octet_only = False
    connection_class: type[_Connection] = _Connection

    def __init__(self, hostport: str, clock: Clock, max_message: int, limits: TcpIntake | None = None,
                 needs: SyslogNeeds | None = None) -> None:
        self.name = f"{self.kind}:{hostport}"
        self.hostport = hostport
        self.clock = clock
        self.needs = needs
        self.max_message = max_message
        self.limits = limits or TcpIntake()
        self.skips = SyslogSource(self.name, clock).skips
        self.counters: Counter[str] = Counter()
        self.limiter = LogLimiter(log)
        self.bound: list[tuple[str, int]] = []
        self.cap = self.limits.max_connections
        self.sink: Sink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socks: list[socket.socket] = []
        self._conns: set[_Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._paused = False

    @property
    def open_connections(self) -> int:
        """Connections of this listener now open."""
        return len(self._conns)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context connections are wrapped in (none for plain TCP)."""
        return None

    async def start(self, sink: Sink) -> None:
        """Listen and start accepting connections."""
        self._ssl = self.ssl_context()
        self.sink, self._loop = sink, sink.loop
        self.cap = min(self.limits.max_connections, descriptor_cap(self.limits.fd_reserve))
        host, port = split_host_port(self.hostport)
        infos = await sink.loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        seen = set()
        try:
            for family, type_, proto, _, addr in infos:
                if (family, addr) in seen:
                    continue
                seen.add((family, addr))
                sock = socket.socket(family, type_, proto)
                self._socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
                sock.listen(1024)
                sock.setblocking(False)
        except BaseException:
            for sock in self._socks:
                sock.close()
            self._socks = []
            raise
        self.bound = [s.getsockname()[:2] for s in self._socks]
        self._resume()
        tick = min(max(min(self.limits.idle_timeout_s, self.limits.frame_timeout_s) / 4, 0.05), 5.0)
        self._sweeper = sink.loop.call_later(tick, self._sweep, tick)

    async def stop(self) -> None:
        """Stop accepting, and close the open connections."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._pause()
        for sock in self._socks:
            sock.close()
        self._socks = []
        for conn in list(self._conns):
            conn.close()

    def describe(self) -> str:
        """Where it listens, and its connection cap."""
        return f"{self.kind.replace('-', ' ')} {self.bound} (at most {self.cap} connections)"

    def forget(self, conn: _Connection) -> None:
        """A connection ended."""
        self._conns.discard(conn)
        CENSUS.forget(conn)

    def _pause(self) -> None:
        if self._loop is not None and not self._paused:
            for sock in self._socks:
                self._loop.remove_reader(sock.fileno())
            self._paused = True

    def _resume(self) -> None:
        if self._loop is not None and self._socks:
            for sock in self._socks:
                self._loop.add_reader(sock.fileno(), self._accept, sock)
            self._paused = False

    def _accept(self, lsock: socket.socket) -> None:
        assert self._loop is not None
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.counters["accept_errors"] += 1
                self.limiter.log(logging.ERROR, "accept", "%s: accept failed: %s", self.name, exc)
                if exc.errno in _OUT_OF_DESCRIPTORS:  # back off instead of spinning on a full table
                    self._pause()
                    self._loop.call_later(0.5, self._resume)
                return
            self._admit(sock, str(addr[0]))

    def _admit(self, sock: socket.socket, peer: str) -> None:
        now = time.monotonic()
        if CENSUS.per_source[peer] >= self.limits.max_per_source:
            sock.close()
            self.counters["refused_per_source"] += 1
            self.limiter.log(logging.WARNING, "per_source", "%s: %s already has %d connections; refused",
                             self.name, peer, self.limits.max_per_source)
            return
        if CENSUS.total >= self.cap:
            oldest = next(iter(CENSUS.by_activity), None)
            if oldest is None or now - oldest.last < EVICT_IDLE_S:
                sock.close()
                self.counters["refused_cap"] += 1
                self.limiter.log(logging.WARNING, "cap", "%s: %d connections open (the cap); refused %s",
                                 self.name, CENSUS.total, peer)
                return
            oldest.close()
            oldest.listener.counters["evicted_idle"] += 1
            self.limiter.log(logging.INFO, "evict", "%s: at the cap; closed the longest-silent connection (%s)",
                             self.name, oldest.peer)
        assert self._loop is not None
        sock.setblocking(False)
        conn = self.connection_class(self, peer, now)
        self._conns.add(conn)
        CENSUS.add(conn)
        conn.task = self._loop.create_task(self._serve(conn, sock))

    async def _serve(self, conn: _Connection, sock: socket.socket) -> None:
        assert self._loop is not None
        try:
            if self._ssl is not None:
                await self._loop.connect_accepted_socket(
                    lambda: conn, sock, ssl=self._ssl, ssl_handshake_timeout=self.limits.frame_timeout_s)
            else:
                await self._loop.connect_accepted_socket(lambda: conn, sock)
        except (OSError, TimeoutError) as exc:
            self.counters["tls_failed" if self._ssl is not None else "accept_errors"] += 1
            self.limiter.log(logging.WARNING, "handshake", "%s: connection from %s failed: %s",
                             self.name, conn.peer, exc)
            sock.close()
            self.forget(conn)
            return
        except asyncio.CancelledError:
            sock.close()
            self.forget(conn)
            raise
        self.counters["connections"] += 1
        if conn.closed and conn.transport is not None:  # closed by the sweep before it was made
            conn.transport.abort()

    def _sweep(self, tick: float) -> None:
        assert self._loop is not None
        now = time.monotonic()
        idle, slow = self.limits.idle_timeout_s, self.limits.frame_timeout_s
        for conn in list(self._conns):
            if now - conn.last > idle:
                conn.close()
                self.counters["idle_closed"] += 1
                self.limiter.log(logging.INFO, "idle", "%s: %s sent nothing for %.0f s; closed",
                                 self.name, conn.peer, idle)
            elif conn.frame_started is not None and now - conn.frame_started > slow:
                conn.close()
                self.counters["slow_closed"] += 1
                self.limiter.log(logging.WARNING, "slow", "%s: %s left a message unfinished for %.0f s; closed",
                                 self.name, conn.peer, slow)
        self._sweeper = self._loop.call_later(tick, self._sweep, tick)


class SyslogTcp(_StreamListener):
    """Syslog streams on one HOST:PORT: RFC 6587 octet-counted or LF-delimited, per connection."""

    kind = "syslog-tcp"


class SyslogTls(_StreamListener):
    """Syslog over TLS (RFC 5425) on one HOST:PORT: octet-counted frames, TLS 1.2 or later."""

    kind = "syslog-tls"
    octet_only = True

    def __init__(self, hostport: str, clock: Clock, max_message: int, limits: TcpIntake | None,
                 tls: TlsIntake, needs: SyslogNeeds | None = None) -> None:
        super().__init__(hostport, clock, max_message, limits, needs)
        self.tls = tls

    def ssl_context(self) -> ssl.SSLContext:
        """Server context: our certificate; with client_ca_file, a client certificate it signed is required."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        assert self.tls.cert_file is not None  # the config model requires it with listen
        ctx.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        if self.tls.client_ca_file is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=self.tls.client_ca_file)
        return ctx


def udp_sources(app: App) -> list[Source]:
    """One UDP listener per [sources] syslog_udp entry."""
    src = app.config.sources
    needs = registered_syslog_needs()
    return [SyslogUdp(hp, app.clock, src.max_message, src.udp.rcvbuf, needs) for hp in src.syslog_udp]


def tcp_sources(app: App) -> list[Source]:
    """One TCP listener per [sources] syslog_tcp entry."""
    src = app.config.sources
    needs = registered_syslog_needs()
    return [SyslogTcp(hp, app.clock, src.max_message, src.tcp, needs) for hp in src.syslog_tcp]


def tls_sources(app: App) -> list[Source]:
    """One TLS listener per [sources.tls] listen entry."""
    src = app.config.sources
    needs = registered_syslog_needs()
    return [SyslogTls(hp, app.clock, src.max_message, src.tcp, src.tls, needs) for hp in src.tls.listen]
