"""The long-running daemon: sources in, incidents out, every few seconds.

Events are fed to the detectors on the event loop; correlation, triage and the store run in a
worker thread on snapshots of the findings (the flush job), so a slow store or model never stalls
ingestion. What feeds the detectors is a list of sources built from `registry.SOURCE_KINDS`; what
runs periodically is a list of named jobs (`jobs.py`).

A flush that fails keeps its findings until they are stored: a store that cannot be written
(locked by another writer, a full disk) is retried with a bounded exponential back-off and shown
in systemd's STATUS=; a finding that cannot be stored at all is isolated by splitting the batch,
logged, counted (`poisoned_findings`) and dropped so that the rest is stored. SIGHUP reloads the
configuration, the playbooks and the guidance catalogues after validating them all (`reload`).

While the store cannot be reached, detection goes on and the unstored snapshots go to the local
findings spool (`spool.py`, `[store] spool`): bounded, oldest dropped first and counted, kept
across a restart. When the store answers again the spool is delivered oldest first, in batches,
before anything new; each batch leaves the spool only once the store committed it. A sensor
whose PostgreSQL server is down at start-up starts anyway, spooling (the runs a previous process
left are recovered, and runs dispatched, only once the store is back); a SQLite store that
cannot be written still stops start-up, naming the file, its owner and mode.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.engine import make_url

from watchstander.connectors.events import Event
from watchstander.guidance.errors import GuidanceError
from watchstander.playbooks.errors import PlaybookError

from ..app.compliance import load_all
from ..app.decide import decide
from ..app.runs import RunService
from ..app.wiring import App
from ..config.detectors import DetectorsConfig
from ..config.model import AgentConfig
from ..detection.detectors.lateral import LateralMovementDetector
from ..detection.pipeline import Pipeline
from ..errors import ConfigError, StoreError, WatchstanderError
from ..models import Finding, Incident
from ..store.engine import Store, migrate_store
from ..store.lateral import LateralStore
from ..store.schema import COMPONENTS
from .jobs import Jobs
from .registry import SOURCE_KINDS
from .sources import Checkpointing, Sink, Source, SourceFactory, build_sources
from .spool import Spool, SpoolError, SpoolLock
from .store_access import STORE_UNAVAILABLE, is_network_store, is_outage, probe_store_write
from .syslog import SyslogTcp, SyslogTls, SyslogUdp
from .systemd import sd_notify, watchdog_interval_s

log = logging.getLogger(__name__)

STOP_GRACE_S = 20.0
# A failing store is retried after 1, 2, 4 ... seconds, never more than a minute apart.
FLUSH_BACKOFF_FIRST_S = 1.0
FLUSH_BACKOFF_MAX_S = 60.0
# Spooled findings go to the store this many at a time, oldest first.
SPOOL_BATCH = 500
# Sections a reload cannot apply: they hold open sockets, the store or the process's logging.
RESTART_SECTIONS = ("store", "control", "logging", "metrics", "console")
# Sections the sources read when they are built: a change restarts every source.
SOURCE_SECTIONS = ("sources", "devices")
# Sections the run service reads when it is built: a change gives runs started afterwards a new one.
RUN_SECTIONS = ("runner", "devices", "notify")

Reloader = Callable[[], AgentConfig]
Settle = Callable[[list[Any], bool], Awaitable[None]]


def _snapshot(f: Finding) -> Finding:
    return dataclasses.replace(f, entities=dict(f.entities), counts=dict(f.counts),
                               attributes=dict(f.attributes), evidence=list(f.evidence))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


class _Learned(LateralStore):
    """The lateral-movement detector's store memory, with what it learned already read (off the loop)."""

    def __init__(self, store: Store, learned: tuple[float, list[tuple[str, str, float]]]) -> None:
        super().__init__(store)
        self._learned = learned

    def load(self) -> tuple[float, list[tuple[str, str, float]]]:
        """What was read when this memory was made."""
        return self._learned


class Daemon:
    """Owns the pipeline, the sources and the scheduled jobs."""

    def __init__(self, app: App, actor: str = "watchstander:daemon",
                 source_kinds: dict[str, SourceFactory] | None = None) -> None:
        self.app = app
        self.config = app.config
        self.actor = actor
        app.triage  # noqa: B018  (a bad triage config or key stops start-up)
        # Detectors that could not load what they learned (the store was unreachable): attached when it is back.
        self.pipeline, self._unattached = self._pipeline(app.config.detectors)
        self._kinds = SOURCE_KINDS if source_kinds is None else source_kinds
        self.sources: list[Source] = build_sources(app, self._kinds)
        self.runs = RunService(app)
        # False while a sensor started without its store: until it is reached, migrated and the runs a
        # previous process left are recovered, findings are only spooled and no run is dispatched.
        self._store_ready = True
        self._recovering: asyncio.Task[None] | None = None
        self.recovery_attempts = 0
        self.recovery_error: str | None = None  # why the last attempt to get the store ready failed
        self._stopping = False
        self.jobs = Jobs(app, self.flush, self.runs, actor)
        store_cfg = app.config.store
        self.spool_path = store_cfg.resolved_spool()
        self._spool_bounds = (store_cfg.spool_max_findings, store_cfg.spool_max_bytes)
        self._spool: Spool | None = None
        self._spool_lock = SpoolLock(self.spool_path)
        # Spool entries the store committed (or refused for good) that the spool could not remove yet,
        # by removal counter: removed before anything else is delivered, so nothing is delivered twice.
        self._unremoved: dict[str, list[int]] = {"delivered": [], "poisoned": []}
        self._spool_dropped_before = 0  # the spool's dropped count when this outage began
        self._spool_full_logged = False
        self._persisted: dict[int, tuple[int, float]] = {}
        self._flush_lock = asyncio.Lock()
        self._reload_lock = asyncio.Lock()
        self._sink: Sink | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.newest_event = 0.0
        self.flushes = 0
        self.incidents_written = 0
        self.on_flush: Callable[[int], None] | None = None
        # Snapshots not yet stored, by the id of the live finding (held, so that its id is not reused).
        self._pending: dict[int, tuple[Finding, Finding]] = {}
        self._retired_runs: list[RunService] = []
        self._retry_at = 0.0
        self._failing_since: float | None = None
        self._consecutive_failures = 0
        # Counters for metrics and `systemctl status`.
        self.flush_failures = 0
        self.poisoned_findings = 0
        self.last_flush_error: str | None = None
        self.last_flush_duration_s = 0.0
        self.reloads = 0
        self.reload_failures = 0
        self.watchdog_pings = 0

    @property
    def pending_findings(self) -> int:
        """Findings waiting to be stored, in memory and in the spool (retried until stored or found poisoned)."""
        return len(self._pending) + self.spool_findings

    @property
    def spool_findings(self) -> int:
        """Findings in the local spool."""
        return 0 if self._spool is None else self._spool.depth

    @property
    def spool_bytes(self) -> int:
        """Bytes of the findings in the local spool."""
        return 0 if self._spool is None else self._spool.bytes

    @property
    def spool_dropped(self) -> int:
        """Spooled findings dropped, oldest first, to keep the spool within its bounds (ever, in its file)."""
        return 0 if self._spool is None else self._spool.dropped

    @property
    def spool_delivered(self) -> int:
        """Spooled findings the store committed (ever, in the spool's file)."""
        return 0 if self._spool is None else self._spool.delivered

    @property
    def store_ready(self) -> bool:
        """False while a sensor that started without its store waits for it (findings spooled, no runs)."""
        return self._store_ready

    @property
    def flush_failing_for_s(self) -> float:
        """For how long every flush has failed (0 while the store takes them)."""
        return 0.0 if self._failing_since is None else time.monotonic() - self._failing_since

    @property
    def bound(self) -> dict[str, list[tuple[str, int]]]:
        """The addresses the syslog listeners are bound to, by transport."""
        out: dict[str, list[tuple[str, int]]] = {"udp": [], "tcp": [], "tls": []}
        for s in self.sources:
            if isinstance(s, SyslogUdp) and s.bound is not None:
                out["udp"].append(s.bound)
            elif isinstance(s, SyslogTcp):
                out["tcp"].extend(s.bound)
            elif isinstance(s, SyslogTls):
                out["tls"].extend(s.bound)
        return out

    def feed(self, events: Iterable[Event]) -> None:
        """Run events through the detectors (on the loop thread)."""
        batch = events if isinstance(events, (list, tuple)) else list(events)
        if batch:
            self.newest_event = max(self.newest_event, max(ev.time for ev in batch))
            self.pipeline.feed_all(batch)

    async def start(self) -> None:
        """Check the store is writable, then start every source, the scheduled jobs and the watchdog."""
        loop = asyncio.get_running_loop()
        url = self.config.store.resolved_url()
        if is_network_store(url):
            # A sensor spools whenever its server is away: the spool is its own from the start (SpoolError
            # naming the other process if a second daemon is pointed at the same file).
            await loop.run_in_executor(None, self._spool_lock.acquire)
        if self.spool_path.exists():  # left by a previous process: delivered before anything new
            self._spool = await loop.run_in_executor(None, self._open_spool)
            self._spool_dropped_before = self._spool.dropped
            if self._spool.depth:
                log.warning("%d finding(s) left in the spool %s by a previous process: delivered first "
                            "(%d dropped there, oldest first, over the spool's life)",
                            self._spool.depth, self.spool_path, self._spool.dropped)
        try:
            # Never run as if healthy on a SQLite store every flush would fail on (StoreError names the file).
            await loop.run_in_executor(None, probe_store_write, self.app.store, url)
        except StoreError as exc:
            if not is_network_store(url):
                raise
            self._start_buffering(url, exc)
        else:
            # Before anything runs: runs a previous process left behind are interrupted, never repeated.
            await self.runs.recover_and_alert(self.actor)
        self._sink = Sink(loop, self.feed)
        for source in self.sources:
            await source.start(self._sink)
        self.jobs.start()
        if not self._store_ready:  # after the jobs started: this task swaps them once the store is back
            self._recovering = asyncio.create_task(self._recover_runs_when_back(), name="recover-runs")
            self._recovering.add_done_callback(self._recovery_ended)
        interval = watchdog_interval_s()
        if interval is not None:
            self._watchdog = asyncio.create_task(self._ping_watchdog(interval), name="watchdog")
        log.info("listening: %s; jobs: %s", "; ".join(s.describe() for s in self.sources) or "no sources",
                 ", ".join(self.jobs.names()))

    def _start_buffering(self, url: str, exc: StoreError) -> None:
        # A sensor keeps detecting while its shared store is down; what it finds is spooled.
        shown = make_url(url).render_as_string(hide_password=True)
        log.error("the store %s cannot be reached (%s): starting anyway, findings are kept in the spool %s "
                  "until it is back; runs wait for it", shown, _one_line(exc), self.spool_path)
        self._store_ready = False
        self.jobs = self._new_jobs()
        self._failed(exc, quiet=True)
        sd_notify(f"STATUS=store unreachable since start-up; findings spooled to {self.spool_path}: "
                  f"{self.last_flush_error}")

    def _new_jobs(self) -> Jobs:
        # No run is dispatched or reverted before the runs a previous process left are recovered.
        return Jobs(self.app, self.flush, self.runs if self._store_ready else None, self.actor)

    async def _recover_runs_when_back(self) -> None:
        loop = asyncio.get_running_loop()
        delay = FLUSH_BACKOFF_FIRST_S
        url = self.config.store.resolved_url()
        not_ready_said = False  # the start-up line named the outage: said again only after another problem
        while True:
            self.recovery_attempts += 1
            try:
                # Opened without its migrations (the server was down): applied now, before anything is written.
                await loop.run_in_executor(None, migrate_store, self.app.store, COMPONENTS)
                await loop.run_in_executor(None, probe_store_write, self.app.store, url)
                await self.runs.recover_and_alert(self.actor)
                break
            except Exception as exc:  # the barrier around migrating and recovering (STYLE rule 2)
                self.recovery_error = _one_line(exc)
                if is_outage(exc):
                    if not_ready_said:
                        log.warning("the store cannot be reached again, trying every %.0f s at most: %s",
                                    FLUSH_BACKOFF_MAX_S, self.recovery_error)
                        not_ready_said = False
                else:
                    # A schema too new, a role without rights: the server answers, this is no outage. Still
                    # retried (someone may fix it); one line per attempt, at most one a minute once backed off.
                    log.error("the store answers but is not ready (attempt %d): %s; runs stay stopped and "
                              "findings spooled, trying again every %.0f s at most", self.recovery_attempts,
                              self.recovery_error, FLUSH_BACKOFF_MAX_S,
                              exc_info=None if not_ready_said or isinstance(exc, StoreError) else exc)
                    not_ready_said = True
            sd_notify(f"STATUS=store not ready after {self.recovery_attempts} attempt(s); findings spooled to "
                      f"{self.spool_path}: {self.recovery_error}")
            await asyncio.sleep(delay)
            delay = min(FLUSH_BACKOFF_MAX_S, delay * 2)
        await self._attach_memories()
        async with self._reload_lock:  # a reload swaps the jobs too
            if self._stopping:  # stop() cancels this task first; this is only a second guard
                return
            self._store_ready = True
            self.recovery_error = None
            self.jobs.stop()
            self.jobs = self._new_jobs()
            self.jobs.start()
        sd_notify("STATUS=running; the store is back, the spool is delivered next")
        log.info("the store is reachable: runs recovered, dispatch started, the spool is delivered next")

    def _recovery_ended(self, task: asyncio.Task[None]) -> None:
        if task is self._recovering:
            self._recovering = None
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is not None or not self._store_ready:
            # Nothing should end it early; if something does, say so loudly: no run is dispatched until a restart.
            self.recovery_error = _one_line(exc) if exc is not None else "the recovery task ended early"
            log.critical("waiting for the store ended unexpectedly: findings stay spooled and no run is "
                         "dispatched until a restart: %s", self.recovery_error, exc_info=exc)
            sd_notify(f"STATUS=store recovery stopped; restart needed: {self.recovery_error}")

    async def _ping_watchdog(self, interval: float) -> None:
        # Sent from the loop itself: a loop stuck in a blocking call stops pinging and systemd restarts us.
        while True:
            sd_notify("WATCHDOG=1")
            self.watchdog_pings += 1
            await asyncio.sleep(interval)

    async def flush(self) -> int:
        """Correlate, triage and store what changed since the last flush; returns incidents written."""
        async with self._flush_lock:  # the scheduled flush and a final one at stop never overlap
            return await self._flush()

    async def _flush(self, *, now: bool = False) -> int:
        checkpoints = [s for s in self.sources if isinstance(s, Checkpointing)]
        for source in checkpoints:
            source.mark()
        for f in self.pipeline.findings:
            sig = (f.count, f.last_seen)
            if self._persisted.get(id(f)) != sig:
                self._persisted[id(f)] = sig
                self._pending[id(f)] = (f, _snapshot(f))  # a newer snapshot replaces an unstored older one
        self._forget_finished()
        if not self._pending and not self.spool_findings:
            self._checkpointed(checkpoints)
            return 0
        if not self._store_ready or (not now and time.monotonic() < self._retry_at):
            # Backing off: the store failed a moment ago. What changed meanwhile waits on disk, not in memory.
            await self._spool_pending()
            return 0
        started = time.monotonic()
        incidents, failure = await self._deliver()
        self.last_flush_duration_s = time.monotonic() - started
        self.incidents_written += len(incidents)
        for inc in incidents:  # also those of a batch the store failed part of the way through
            log.info("incident %s [%s] %s", inc.id, inc.verdict.severity if inc.verdict else inc.severity, inc.title)
        if failure is not None:
            self._failed(failure)
            # No checkpoint: positions live in the store, and a crash meanwhile re-reads (never loses) input.
            await self._spool_pending()
            return len(incidents)
        self._recovered()
        self._checkpointed(checkpoints)
        self.flushes += 1
        if self.on_flush:
            self.on_flush(len(incidents))
        return len(incidents)

    async def _deliver(self) -> tuple[list[Incident], Exception | None]:
        """Store the spool, oldest first, then what is pending in memory; stops at the first store failure."""
        loop = asyncio.get_running_loop()
        out: list[Incident] = []
        spool = self._spool
        if spool is not None:
            unremoved = await self._remove_unremoved(spool)
            if unremoved is not None:
                return out, unremoved  # delivering more would deliver these again
        while spool is not None and spool.depth:
            try:
                batch = await loop.run_in_executor(None, spool.peek, SPOOL_BATCH)
            except SpoolError as exc:
                log.error("%s; the spooled findings stay there", exc)
                break
            if not batch:
                continue  # every entry read was undecodable (set aside), or the count was stale: read on
            spool_failure: list[SpoolError] = []

            async def settle(seqs: list[Any], poisoned: bool, spool: Spool = spool,
                             spool_failure: list[SpoolError] = spool_failure) -> None:
                counter = "poisoned" if poisoned else "delivered"
                try:
                    await loop.run_in_executor(None, spool.remove, seqs, counter)
                except SpoolError as exc:  # kept in memory and removed first next time, never delivered twice
                    self._unremoved[counter].extend(seqs)
                    spool_failure.append(exc)

            stored, failure = await self._store(batch, settle)
            out.extend(stored)
            if failure is None and spool_failure:
                failure = spool_failure[0]
            if failure is not None:
                return out, failure
            if not spool.depth:
                log.warning("the findings spool is delivered; %d dropped while it was full (%d delivered "
                            "over the spool's life)", spool.dropped - self._spool_dropped_before, spool.delivered)
        if self._pending:
            async def forget(keys: list[Any], poisoned: bool) -> None:
                for key in keys:
                    del self._pending[key]

            stored, failure = await self._store([(key, snap) for key, (_, snap) in self._pending.items()], forget)
            out.extend(stored)
            if failure is not None:
                return out, failure
        return out, None

    async def _remove_unremoved(self, spool: Spool) -> SpoolError | None:
        loop = asyncio.get_running_loop()
        for counter, seqs in self._unremoved.items():
            if seqs:
                try:
                    await loop.run_in_executor(None, spool.remove, list(seqs), counter)
                except SpoolError as exc:
                    return exc
                seqs.clear()
        return None

    def _open_spool(self) -> Spool:
        self._spool_lock.acquire()
        spool = Spool(self.spool_path, *self._spool_bounds, clock=self.app.clock, lock=self._spool_lock)
        if spool.set_aside is not None:
            sd_notify(f"STATUS=the findings spool was unreadable; moved aside to {spool.set_aside}")
        return spool

    async def _spool_pending(self) -> None:
        """Move the snapshots pending in memory to the spool (kept in memory if it cannot be written)."""
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        try:
            if self._spool is None:
                self._spool = await loop.run_in_executor(None, self._open_spool)
            spool = self._spool
            dropped = await loop.run_in_executor(None, spool.put, [snap for _, snap in self._pending.values()])
        except SpoolError as exc:
            log.error("%s; %d finding(s) kept in memory instead (lost if the daemon stops)", exc, len(self._pending))
            return
        self._pending.clear()
        if dropped and not self._spool_full_logged:
            self._spool_full_logged = True  # once per outage; the total is logged when the spool is delivered
            log.error("the findings spool %s is full (%d findings, %.1f MB): dropping the oldest; %d dropped so far",
                      self.spool_path, spool.depth, spool.bytes / 2**20, spool.dropped - self._spool_dropped_before)

    async def _store(self, batch: list[tuple[Any, Finding]], settle: Settle) -> tuple[list[Incident], Exception | None]:
        """Store `batch`, splitting it to isolate findings that cannot be stored; returns the store's failure.

        `settle(keys, poisoned)` is awaited once the store committed those keys (or found them poisoned).
        """
        loop = asyncio.get_running_loop()
        try:
            incidents = await loop.run_in_executor(None, decide, self.app, [f for _, f in batch], self.actor)
        except STORE_UNAVAILABLE as exc:
            return [], exc
        except Exception as exc:  # the barrier around the store and triage (STYLE rule 2)
            if len(batch) == 1:
                key, finding = batch[0]
                self.poisoned_findings += 1
                # repr: the finding's own text may be what cannot be encoded.
                log.error("dropped finding %s %r about %r: it cannot be stored: %s", finding.detector, finding.title,
                          finding.entities, _one_line(exc), exc_info=exc)
                await settle([key], True)
                return [], None
            middle = len(batch) // 2
            out: list[Incident] = []
            for half in (batch[:middle], batch[middle:]):
                stored, failure = await self._store(half, settle)
                out.extend(stored)
                if failure is not None:
                    return out, failure
            return out, None
        await settle([key for key, _ in batch], False)
        return incidents, None

    def _failed(self, exc: Exception, *, quiet: bool = False) -> None:
        self.flush_failures += 0 if quiet else 1
        self._consecutive_failures += 1
        self.last_flush_error = _one_line(exc)
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            self._spool_dropped_before = self.spool_dropped
            self._spool_full_logged = False
        delay = min(FLUSH_BACKOFF_MAX_S, FLUSH_BACKOFF_FIRST_S * 2 ** (self._consecutive_failures - 1))
        self._retry_at = now + delay
        if not quiet:
            # The traceback once per outage; then one line per attempt, at most one a minute once backed off.
            log.error("flush of %d finding(s) failed (%d in a row); spooled, retrying in %.0f s: %s",
                      self.pending_findings, self._consecutive_failures, delay, self.last_flush_error,
                      exc_info=exc if self._consecutive_failures == 1 else None)
        sd_notify(f"STATUS=flush failing for {_duration(now - self._failing_since)}, "
                  f"{self.pending_findings} finding(s) waiting: {self.last_flush_error}")

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.warning("flush succeeded again after %d failure(s) over %s", self._consecutive_failures,
                        _duration(time.monotonic() - self._failing_since))
            sd_notify("STATUS=running; the store takes flushes again")
        self._failing_since = None
        self._spool_full_logged = False
        self._consecutive_failures = 0
        self._retry_at = 0.0

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
        # so that memory stays flat in a daemon that runs for months. Their unstored snapshots stay pending.
        horizon = self.newest_event - self.config.correlation.window_s
        keep = [f for f in self.pipeline.findings if f.last_seen >= horizon]
        if len(keep) != len(self.pipeline.findings):
            live = {id(f) for f in keep}
            self._persisted = {k: v for k, v in self._persisted.items() if k in live}
            self.pipeline.findings[:] = keep

    async def reload(self, load: Reloader) -> bool:
        """Load and validate the config, playbooks and guidance catalogues, then apply them; False if refused."""
        async with self._reload_lock:
            sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
            try:
                return await self._reload(load)
            finally:
                sd_notify("READY=1")

    async def _reload(self, load: Reloader) -> bool:
        loop = asyncio.get_running_loop()
        try:
            fresh, restart_sources = await loop.run_in_executor(None, self._validated_app, load)
        except ConfigError as exc:
            self.reload_failures += 1
            problems = "; ".join(f"{key}: {msg}" for key, msg in exc.problems)
            log.error("reload refused, the running configuration stays: %s%s", exc, f" ({problems})" if problems else "")
            return False
        except (WatchstanderError, PlaybookError, GuidanceError, OSError) as exc:
            self.reload_failures += 1
            log.error("reload refused, the running configuration stays: %s", _one_line(exc))
            return False
        await self._apply(fresh, restart_sources)
        return True

    def _validated_app(self, load: Reloader) -> tuple[App, bool]:
        # Everything a reload changes is built and checked here, before anything running is touched.
        config = load()
        app = App(config, self.app.store, self.app.clock)
        try:
            app.triage  # noqa: B018  (a bad triage config or key refuses the reload)
            app.catalogue()
            load_all(app)
            Pipeline(config.detectors)
            # Built to check them (nothing is opened before start) when their sections changed.
            restart = any(getattr(config, name) != getattr(self.config, name) for name in SOURCE_SECTIONS)
            if restart:
                build_sources(app, self._kinds)
        except BaseException:
            app.close()
            raise
        return app, restart

    def _pipeline(self, detectors: DetectorsConfig) -> tuple[Pipeline, list[LateralMovementDetector]]:
        """The detectors, the ones that learn over days given the store as their memory; and those left unattached.

        Blocking (the store is read): called before the loop runs, or in a worker thread.
        """
        pipeline = Pipeline(detectors)
        unattached: list[LateralMovementDetector] = []
        for det in pipeline.detectors:
            if isinstance(det, LateralMovementDetector):
                memory = self._loaded_memory(det)
                if memory is None:
                    unattached.append(det)
                else:
                    det.attach_memory(memory)  # replays keep in-memory learning
        return pipeline, unattached

    def _loaded_memory(self, det: LateralMovementDetector) -> LateralStore | None:
        # Loaded here, and the detector given it only once the load succeeded: a detector attached to a
        # store it cannot read would fail every save (and lose the finding that triggered it).
        memory = LateralStore(self.app.store)
        try:
            learned = memory.load()
        except STORE_UNAVAILABLE as exc:
            log.warning("detector %s learns in memory until the store is back: %s", det.id, _one_line(exc))
            return None
        except Exception as exc:  # the barrier around one detector's memory (STYLE rule 2)
            log.error("detector %s learns in memory: what it learned cannot be read from the store: %s",
                      det.id, _one_line(exc), exc_info=exc)
            return None
        return _Learned(self.app.store, learned)

    async def _attach_memories(self) -> None:
        loop = asyncio.get_running_loop()
        for det in list(self._unattached):
            memory = await loop.run_in_executor(None, self._loaded_memory, det)  # a store read: off the loop
            if memory is None:
                return
            if det not in self._unattached:  # a reload meanwhile replaced the detectors
                continue
            self._unattached.remove(det)
            try:
                det.attach_memory(memory)  # on the loop, like `feed`: no load here, `memory` holds it
            except Exception:  # the barrier around one detector (STYLE rule 2): it goes on learning in memory
                log.exception("detector %s could not take what it learned from the store", det.id)
                continue
            log.info("detector %s: what it learned before is loaded from the store", det.id)

    async def _apply(self, fresh: App, restart_sources: bool) -> None:
        old, new = self.config, fresh.config
        changed = [name for name in type(new).model_fields if getattr(old, name) != getattr(new, name)]
        needs_restart = [name for name in changed if name in RESTART_SECTIONS]
        async with self._flush_lock:
            if restart_sources:
                await self._stop_sources()
            await self._flush(now=True)  # what the old detectors found is stored under the old config
            # The App is shared (control socket, run service, jobs): it takes the new services in place.
            # (fresh was built over the same store and clock, so only config-made services change.)
            self.app.adopt(fresh)
            self.config = new
            if old.detectors != new.detectors:
                # The detectors' windows start afresh; what they had found is stored (or pending) above.
                loop = asyncio.get_running_loop()
                self.pipeline, self._unattached = await loop.run_in_executor(None, self._pipeline, new.detectors)
                self._persisted.clear()
            if any(name in changed for name in RUN_SECTIONS):
                # Runs in flight finish on the service that started them; stop() drains both.
                self._retired_runs.append(self.runs)
                self.runs = RunService(self.app)
            self.jobs.stop()
            self.jobs = self._new_jobs()
            self.jobs.start()
            if restart_sources:
                # Built again over the shared App (the checked ones hold the discarded one).
                self.sources = build_sources(self.app, self._kinds)
                await self._start_sources()
        self.reloads += 1
        log.info("configuration reloaded; changed: %s", ", ".join(changed) or "nothing")
        if needs_restart:
            log.warning("changes to [%s] take effect at the next restart", "], [".join(needs_restart))

    async def _start_sources(self) -> None:
        assert self._sink is not None
        for source in self.sources:
            try:
                await source.start(self._sink)
            except OSError as exc:
                log.error("source %s could not start after the reload: %s", source.name, exc)
        log.info("listening: %s", "; ".join(s.describe() for s in self.sources) or "no sources")

    async def _stop_sources(self) -> None:
        for source in self.sources:
            try:
                await source.stop()
            except Exception:  # a source that died already logged why
                log.debug("source %s ended with an error", source.name, exc_info=True)

    async def stop(self) -> None:
        """Stop the sources and jobs, flush what is left, and return."""
        self._stopping = True
        # First: a store that comes back now must not start jobs (and runs) behind the drain below.
        recovering, self._recovering = self._recovering, None
        if recovering is not None:
            recovering.cancel()
            await asyncio.gather(recovering, return_exceptions=True)
        self.jobs.stop()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        try:
            # A run in flight may finish its step (systemd allows TimeoutStopSec); what is left is
            # cancelled and found `interrupted` at the next start.
            await asyncio.gather(*(runs.drain(STOP_GRACE_S) for runs in (*self._retired_runs, self.runs)))
            await self._stop_sources()
            async with self._flush_lock:
                await self._flush(now=True)
            if self._pending:
                log.error("stopping with %d finding(s) the store did not take and the spool could not keep: %s",
                          len(self._pending), self.last_flush_error)
            unremoved = sum(map(len, self._unremoved.values()))
            if unremoved:
                log.warning("stopping with %d spooled finding(s) the store took but the spool could not remove: "
                            "delivered again after the next start (the store keeps one copy)", unremoved)
        finally:
            try:
                if self._spool is not None:
                    if self._spool.depth:
                        log.warning("stopping with %d finding(s) in the spool %s: delivered after the next start",
                                    self._spool.depth, self.spool_path)
                    self._spool.close()
            finally:
                self._spool_lock.release()
                self.app.close()

    async def run_until_signalled(self, reload: Reloader | None = None) -> None:
        """Start, tell systemd we are ready, and run until SIGTERM or SIGINT; SIGHUP reloads with `reload`."""
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        reloading: set[asyncio.Task[bool]] = set()
        if reload is not None:
            def on_hup() -> None:
                task = loop.create_task(self.reload(reload))
                reloading.add(task)
                task.add_done_callback(reloading.discard)
            loop.add_signal_handler(signal.SIGHUP, on_hup)
        sd_notify("READY=1")
        await stop.wait()
        log.info("stopping")
        sd_notify("STOPPING=1")
        for task in list(reloading):
            await task
        await self.stop()
