"""The long-running daemon: syslog over UDP/TCP and followed files in, incidents out, every few seconds.

Events are fed to the detectors on the event loop; correlation, triage and the store run in a
worker thread on snapshots of the findings, so a slow store or model never stalls ingestion.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchstander.connectors import sniff as sniffing
from watchstander.connectors.errors import UnknownFormatError
from watchstander.connectors.events import Event
from watchstander.connectors.ids import eve_event
from watchstander.connectors.skips import SkipCounter
from watchstander.connectors.syslog import SyslogSource

from .clock import Clock
from .config import AgentConfig
from .ingest import persist
from .models import Finding
from .pipeline import Pipeline
from .services import Services
from .store import Store

log = logging.getLogger(__name__)

FOLLOW_INTERVAL_S = 1.0


def _split(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


def _snapshot(f: Finding) -> Finding:
    return dataclasses.replace(f, entities=dict(f.entities), counts=dict(f.counts),
                               attributes=dict(f.attributes), evidence=list(f.evidence))


class _SyslogDatagrams(asyncio.DatagramProtocol):
    def __init__(self, daemon: Daemon, source: SyslogSource) -> None:
        self.daemon = daemon
        self.source = source

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.daemon.feed(self.source.events(data.splitlines() or [data]))


class Daemon:
    """Owns the pipeline, the listeners, the followed files and the periodic flush."""

    def __init__(self, config: AgentConfig, store: Store, clock: Clock, actor: str = "watchstander:daemon") -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.actor = actor
        self.pipeline = Pipeline(config.detectors)
        self.services = Services.build(config, store, clock)  # a bad triage config stops start-up
        self._persisted: dict[int, tuple[int, float]] = {}
        self._stop = asyncio.Event()
        self._servers: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.bound: dict[str, list[tuple[str, int]]] = {"udp": [], "tcp": []}
        self.newest_event = 0.0
        self.flushes = 0
        self.incidents_written = 0
        self.on_flush: Callable[[int], None] | None = None

    def feed(self, events: Any) -> None:
        """Run events through the detectors (on the loop thread)."""
        for ev in events:
            if ev.time > self.newest_event:
                self.newest_event = ev.time
            self.pipeline.feed_all((ev,))

    async def start(self) -> None:
        """Open every listener and start following files."""
        loop = asyncio.get_running_loop()
        src = self.config.sources
        for hp in src.syslog_udp:
            host, port = _split(hp)
            source = SyslogSource(f"syslog-udp:{hp}", self.clock)

            def protocol(s: SyslogSource = source) -> _SyslogDatagrams:
                return _SyslogDatagrams(self, s)

            transport, _ = await loop.create_datagram_endpoint(protocol, local_addr=(host, port))
            self._servers.append(transport)
            self.bound["udp"].append(transport.get_extra_info("sockname")[:2])
        for hp in src.syslog_tcp:
            host, port = _split(hp)
            server = await asyncio.start_server(self._tcp_client, host, port, limit=src.max_message)
            self._servers.append(server)
            self.bound["tcp"].extend(s.getsockname()[:2] for s in server.sockets)
        for path in src.files:
            self._tasks.append(asyncio.create_task(self._follow(Path(path)), name=f"follow {path}"))
        self._tasks.append(asyncio.create_task(self._flusher(), name="flush"))
        log.info("listening: syslog udp %s, tcp %s; following %d file(s); flush every %.1f s",
                 self.bound["udp"], self.bound["tcp"], len(src.files), src.flush_s)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = SyslogSource(f"syslog-tcp:{peer[0] if peer else '?'}", self.clock)
        try:
            while not reader.at_eof():
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    line = exc.partial
                except asyncio.LimitOverrunError as exc:
                    # An overlong frame: keep what fits, drop the rest of it.
                    line = await reader.readexactly(exc.consumed)
                    source.skips.skip("overlong TCP frame truncated", str(peer))
                if not line:
                    break
                self.feed(source.events([_strip_octet_count(line)]))
        except (ConnectionError, OSError) as exc:
            log.info("syslog tcp client %s: %s", peer, exc)
        finally:
            writer.close()

    async def _follow(self, path: Path) -> None:
        """Tail a file: new lines as they come, starting over when it is rotated or truncated."""
        fmt: str | None = None
        pos, inode = 0, None
        skips = SkipCounter(log, str(path))
        syslog = SyslogSource(f"file:{path.name}", self.clock, skips)
        pending = b""
        while not self._stop.is_set():
            try:
                st = path.stat()
                if inode != st.st_ino or st.st_size < pos:
                    pos, inode, pending = 0, st.st_ino, b""
                if st.st_size > pos:
                    with open(path, "rb") as fh:
                        fh.seek(pos)
                        chunk = fh.read(4 * 1024 * 1024)
                    pos += len(chunk)
                    data = pending + chunk
                    lines = data.split(b"\n")
                    pending = lines.pop()
                    if fmt is None and lines:
                        fmt = sniffing.sniff(path)
                        log.info("following %s as %s", path, fmt)
                    if fmt == sniffing.EVE:
                        self.feed(self._eve(lines, path, skips))
                    else:
                        self.feed(syslog.events(lines))
            except FileNotFoundError:
                pass
            except (OSError, UnknownFormatError) as exc:
                log.warning("cannot follow %s: %s", path, exc)
            try:
                await asyncio.wait_for(self._stop.wait(), FOLLOW_INTERVAL_S)
            except asyncio.TimeoutError:
                pass

    @staticmethod
    def _eve(lines: list[bytes], path: Path, skips: SkipCounter) -> Any:
        import json

        for n, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                ev = eve_event(json.loads(raw), f"eve:{path.name}", f"eve:{path.name}")
            except (ValueError, TypeError) as exc:
                skips.skip("bad EVE record", str(exc))
                continue
            if ev is not None:
                yield ev

    async def _flusher(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.config.sources.flush_s)
            except asyncio.TimeoutError:
                pass
            await self.flush()

    async def flush(self) -> int:
        """Correlate, triage and store what changed since the last flush; returns incidents written."""
        changed = []
        for f in self.pipeline.findings:
            sig = (f.count, f.last_seen)
            if self._persisted.get(id(f)) != sig:
                self._persisted[id(f)] = sig
                changed.append(_snapshot(f))
        self._forget_finished()
        if not changed:
            return 0
        loop = asyncio.get_running_loop()
        try:
            incidents = await loop.run_in_executor(
                None, persist, changed, self.config, self.store, self.clock, self.actor, self.services)
        except Exception:  # the barrier around the store and triage (STYLE rule 2)
            log.exception("flush of %d finding(s) failed; will retry", len(changed))
            for f in changed:
                self._persisted.pop(id(f), None)
            return 0
        self.flushes += 1
        self.incidents_written += len(incidents)
        for inc in incidents:
            log.info("incident %s [%s] %s", inc.id, inc.verdict.severity if inc.verdict else inc.severity, inc.title)
        if self.on_flush:
            self.on_flush(len(incidents))
        return len(incidents)

    def _forget_finished(self) -> None:
        # Findings idle for longer than the correlation window are final: stop tracking them
        # so that memory stays flat in a daemon that runs for months.
        horizon = self.newest_event - self.config.correlation.window_s
        keep = [f for f in self.pipeline.findings if f.last_seen >= horizon]
        if len(keep) != len(self.pipeline.findings):
            live = {id(f) for f in keep}
            self._persisted = {k: v for k, v in self._persisted.items() if k in live}
            self.pipeline.findings[:] = keep

    async def stop(self) -> None:
        """Stop listening, flush what is left, and return."""
        self._stop.set()
        for s in self._servers:
            s.close()
        for t in self._tasks:
            try:
                await t
            except Exception:  # a follower that died already logged why
                log.debug("task %s ended with an error", t.get_name(), exc_info=True)
        await self.flush()
        self.services.close()

    async def run_until_signalled(self) -> None:
        """Start, tell systemd we are ready, and run until SIGTERM or SIGINT."""
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        sd_notify("READY=1")
        await stop.wait()
        log.info("stopping")
        sd_notify("STOPPING=1")
        await self.stop()


def _strip_octet_count(frame: bytes) -> bytes:
    """Drop an RFC 6587 octet-counting prefix ("123 <34>1 ...") if present."""
    head, sep, rest = frame.partition(b" ")
    if sep and head.isdigit() and rest[:1] == b"<":
        return rest
    return frame


def sd_notify(state: str) -> None:
    """Tell systemd about our state when it is listening (Type=notify); otherwise do nothing."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(state.encode(), addr)
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
