"""The daemon's periodic work as named jobs on one APScheduler (3.x) scheduler running on the event loop.

    flush                 correlate, triage and store what the detectors found ([sources] flush_s)
    suggestions.expire    the review queue's TTL sweep, so expiry needs nobody to list suggestions
    guidance.reminders    the daily deadline reminders ([guidance.reminders] hour, minute, timezone)
    store.maintain        checkpoint and optimise the store once a day
    runs.dispatch         start a run for every approved suggestion ([runner] auto_run, every poll_s)
    runs.revert_due       undo runs whose timed revert is due (kept in the store across restarts)

Every job runs behind one barrier: a failure is logged with the job's name and the next run
comes as scheduled. Blocking work goes to a worker thread so the loop keeps ingesting.

Several agents sharing one store: the sweep, the reminders and the timed reverts run once per
cluster (`once_per_cluster`: the node that claims an occurrence's lease runs it); ingest and
dispatch run on every node (the claim decides which node runs a suggestion).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watchstander.guidance.errors import GuidanceError
from watchstander.guidance.reminders import install_reminder_job

from ..app.compliance import run_reminders
from ..app.runs import RunService
from ..app.wiring import App
from ..errors import WatchstanderError
from ..store.cluster import run_once

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 60.0
MAINTAIN_EVERY_S = 24 * 3600.0
SWEEPER = "watchstander:sweeper"
REVERT_CHECK_S = 10.0

Job = Callable[[], Awaitable[object]]
Occurrence = Callable[[], int]


def guarded(name: str, job: Job) -> Job:
    """The barrier around one job: log the failure with the job's name and carry on."""
    async def run() -> None:
        try:
            await job()
        except Exception:  # the barrier around one scheduled job (STYLE rule 2)
            log.exception("job %s failed; it runs again at its next time", name)
    run.__name__ = name
    return run


def in_thread(fn: Callable[[], object]) -> Job:
    """Run blocking work (the store, the model, SMTP) in a worker thread."""
    async def run() -> None:
        await asyncio.get_running_loop().run_in_executor(None, fn)
    return run


class Jobs:
    """The scheduler and the daemon's named jobs on it."""

    def __init__(self, app: App, flush: Job, runs: RunService | None = None, actor: str = "watchstander:daemon") -> None:
        self.app = app
        self.scheduler = AsyncIOScheduler(timezone=ZoneInfo("UTC"))
        self.add("flush", flush, IntervalTrigger(seconds=app.config.sources.flush_s))
        self.add("suggestions.expire", self.once_per_cluster(
            "suggestions.expire", self.every(EXPIRE_EVERY_S), in_thread(self.expire_suggestions)),
            IntervalTrigger(seconds=EXPIRE_EVERY_S))
        self.add("store.maintain", in_thread(app.store.maintain), IntervalTrigger(seconds=MAINTAIN_EVERY_S))
        if runs is not None:
            if app.config.runner.auto_run:
                self.add("runs.dispatch", lambda: runs.dispatch(actor), IntervalTrigger(seconds=app.config.runner.poll_s))
            self.add("runs.revert_due", self.once_per_cluster("runs.revert_due", self.every(REVERT_CHECK_S),
                                                              runs.revert_due), IntervalTrigger(seconds=REVERT_CHECK_S))
        reminders = self.once_per_cluster("guidance.reminders", self.reminder_day, in_thread(self.send_reminders))
        install_reminder_job(self.scheduler, guarded("guidance.reminders", reminders), app.config.guidance.reminders)

    def add(self, name: str, job: Job, trigger: IntervalTrigger) -> None:
        """Schedule one named job; a second job of the same name raises."""
        if self.scheduler.get_job(name) is not None:
            raise ValueError(f"job {name!r} scheduled twice")
        self.scheduler.add_job(guarded(name, job), trigger, id=name, name=name, coalesce=True, max_instances=1)

    def once_per_cluster(self, name: str, occurrence: Occurrence, job: Job) -> Job:
        """`job`, run only by the node that claims this occurrence of it (every time on a lone agent)."""
        holder = self.app.config.agent.name

        async def run() -> None:
            won = await asyncio.to_thread(run_once, self.app.store, name, occurrence(), holder,
                                          self.app.clock().isoformat())
            if won:
                await job()
        return run

    def every(self, period_s: float) -> Occurrence:
        """Occurrences of an interval job: the index of the period the clock is in."""
        return lambda: int(self.app.clock().timestamp() // period_s)

    def reminder_day(self) -> int:
        """The reminder run's occurrence: its day, counted so that nodes a few hours apart agree."""
        cfg = self.app.config.guidance.reminders
        local = self.app.clock().astimezone(ZoneInfo(cfg.timezone))
        # Centred on the configured time, so clocks that straddle it (or a late start within the
        # misfire grace) still land on the same day.
        return (local - timedelta(hours=cfg.hour - 12, minutes=cfg.minute)).date().toordinal()

    def names(self) -> list[str]:
        """The ids of every scheduled job."""
        return sorted(job.id for job in self.scheduler.get_jobs())

    def start(self) -> None:
        """Start running jobs on the current event loop."""
        self.scheduler.start()

    def stop(self) -> None:
        """Stop scheduling; a job in flight finishes on its own."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def expire_suggestions(self) -> None:
        """The review queue's TTL sweep."""
        expired = self.app.review_queue().expire_due(SWEEPER)
        if expired:
            log.info("expired %d suggestion(s): %s", len(expired), ", ".join(map(str, expired)))

    def send_reminders(self) -> None:
        """Today's guidance reminders, each channel once per reminder."""
        today: date = self.app.clock().date()
        try:
            reminders, result = run_reminders(self.app, today)
        except (WatchstanderError, GuidanceError) as exc:
            log.error("guidance reminder run failed: %s", exc)
            return
        log.info("guidance reminders for %s: %d due, sent %s", today.isoformat(), len(reminders), dict(result.sent))
