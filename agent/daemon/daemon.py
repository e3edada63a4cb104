"""The long-running daemon: sources in, incidents out, every few seconds.

Events are fed to the detectors on the event loop; correlation, triage and the store run in a
worker thread on snapshots of the findings (the flush job), so a slow store or model never stalls
ingestion. What feeds the detectors is a list of sources built from `registry.SOURCE_KINDS`; what
runs periodically is a list of named jobs (`jobs.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Callable, Iterable, Sequence

from watchstander.connectors.events import Event

from ..app.decide import decide
from ..app.runs import RunService
from ..app.wiring import App
from ..detection.pipeline import Pipeline
from ..models import Finding
from .jobs import Jobs
from .registry import SOURCE_KINDS
from .sources import Checkpointing, Sink, Source, SourceFactory, build_sources
from .syslog import SyslogTcp, SyslogUdp
from .systemd import sd_notify

log = logging.getLogger(__name__)

STOP_GRACE_S = 20.0


def _snapshot(f: Finding) -> Finding:
    return dataclasses.replace(f, entities=dict(f.entities), counts=dict(f.counts),
                               attributes=dict(f.attributes), evidence=list(f.evidence))


class Daemon:
    """Owns the pipeline, the sources and the scheduled jobs."""

    def __init__(self, app: App, actor: str = "watchstander:daemon",
                 source_kinds: dict[str, SourceFactory] | None = None) -> None:
        self.app = app
        self.config = app.config
        self.actor = actor
        app.triage  # noqa: B018  (a bad triage config or key stops start-up)
        self.pipeline = Pipeline(app.config.detectors)
        self.sources: list[Source] = build_sources(app, SOURCE_KINDS if source_kinds is None else source_kinds)
        self.runs = RunService(app)
        self.jobs = Jobs(app, self.flush, self.runs, actor)
        self._persisted: dict[int, tuple[int, float]] = {}
        self._flush_lock = asyncio.Lock()
        self.newest_event = 0.0
        self.flushes = 0
        self.incidents_written = 0
        self.on_flush: Callable[[int], None] | None = None

    @property
    def bound(self) -> dict[str, list[tuple[str, int]]]:
        """The addresses the syslog listeners are bound to, by transport."""
        out: dict[str, list[tuple[str, int]]] = {"udp": [], "tcp": []}
        for s in self.sources:
            if isinstance(s, SyslogUdp) and s.bound is not None:
                out["udp"].append(s.bound)
            elif isinstance(s, SyslogTcp):
                out["tcp"].extend(s.bound)
        return out

    def feed(self, events: Iterable[Event]) -> None:
        """Run events through the detectors (on the loop thread)."""
        for ev in events:
            if ev.time > self.newest_event:
                self.newest_event = ev.time
            self.pipeline.feed_all((ev,))

    async def start(self) -> None:
        """Start every source and the scheduled jobs."""
        # Before anything runs: runs a previous process left behind are interrupted, never repeated.
        await self.runs.recover_and_alert(self.actor)
        sink = Sink(asyncio.get_running_loop(), self.feed)
        for source in self.sources:
            await source.start(sink)
        self.jobs.start()
        log.info("listening: %s; jobs: %s", "; ".join(s.describe() for s in self.sources) or "no sources",
                 ", ".join(self.jobs.names()))

    async def flush(self) -> int:
        """Correlate, triage and store what changed since the last flush; returns incidents written."""
        async with self._flush_lock:  # the scheduled flush and a final one at stop never overlap
            return await self._flush()

    async def _flush(self) -> int:
        checkpoints = [s for s in self.sources if isinstance(s, Checkpointing)]
        for source in checkpoints:
            source.mark()
        changed = []
        for f in self.pipeline.findings:
            sig = (f.count, f.last_seen)
            if self._persisted.get(id(f)) != sig:
                self._persisted[id(f)] = sig
                changed.append(_snapshot(f))
        self._forget_finished()
        if not changed:
            self._checkpointed(checkpoints)
            return 0
        loop = asyncio.get_running_loop()
        try:
            incidents = await loop.run_in_executor(None, decide, self.app, changed, self.actor)
        except Exception:  # the barrier around the store and triage (STYLE rule 2)
            log.exception("flush of %d finding(s) failed; will retry", len(changed))
            for f in changed:
                self._persisted.pop(id(f), None)
            return 0
        self._checkpointed(checkpoints)
        self.flushes += 1
        self.incidents_written += len(incidents)
        for inc in incidents:
            log.info("incident %s [%s] %s", inc.id, inc.verdict.severity if inc.verdict else inc.severity, inc.title)
        if self.on_flush:
            self.on_flush(len(incidents))
        return len(incidents)

    @staticmethod
    def _checkpointed(sources: Sequence[Checkpointing]) -> None:
        # Only after the findings are stored: a crash before this re-reads (never loses) the input.
        for source in sources:
            try:
                source.flushed()
            except Exception:  # the barrier around one source's checkpoint (STYLE rule 2)
                log.exception("could not save the position of %s", getattr(source, "name", source))

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
        """Stop the sources and jobs, flush what is left, and return."""
        self.jobs.stop()
        # A run in flight may finish its step (systemd allows TimeoutStopSec); what is left is
        # cancelled and found `interrupted` at the next start.
        await self.runs.drain(STOP_GRACE_S)
        for source in self.sources:
            try:
                await source.stop()
            except Exception:  # a source that died already logged why
                log.debug("source %s ended with an error", source.name, exc_info=True)
        await self.flush()
        self.app.close()

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
