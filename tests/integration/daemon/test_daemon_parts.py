"""The daemon's parts: named jobs on the scheduler, the expiry sweep, the thread-safe sink, the source table."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.daemon.daemon import Daemon
from watchstander.agent.daemon.registry import SOURCE_KINDS
from watchstander.agent.daemon.sources import Sink
from watchstander.agent.store.schema import open_store
from watchstander.connectors.events import LOG, Event


def _app(tmp_path: Path, clock, **sources):  # type: ignore[no-untyped-def]
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"},
                           "sources": {"syslog_udp": ["127.0.0.1:0"], "flush_s": 0.2, **sources}})
    return App(cfg, open_store(cfg.store.resolved_url()), clock)


def test_periodic_work_is_named_jobs_on_one_scheduler(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    """Flush, the suggestion expiry sweep, guidance reminders and store upkeep are all scheduled."""
    app = _app(tmp_path, clock)

    async def scenario() -> list[str]:
        daemon = Daemon(app)
        await daemon.start()
        try:
            return daemon.jobs.names()
        finally:
            await daemon.stop()

    names = asyncio.run(scenario())
    assert {"flush", "suggestions.expire", "store.maintain"} <= set(names)
    assert any("reminder" in n for n in names)
    app.store.close()


def test_expiry_sweep_and_store_upkeep_run_without_anyone_listing(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    """The jobs' bodies run on their own: the sweep asks the queue, upkeep checkpoints SQLite."""
    app = _app(tmp_path, clock)
    daemon = Daemon(app)
    daemon.jobs.expire_suggestions()  # nothing pending: returns quietly
    app.store.maintain()
    app.close()
    app.store.close()


def test_a_source_in_another_thread_hands_events_to_the_loop(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    """Sink.feed_threadsafe runs the detectors on the loop's thread, in order."""
    seen: list[tuple[str, float]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def feed(events) -> None:  # type: ignore[no-untyped-def]
            for ev in events:
                seen.append((threading.current_thread().name, ev.time))
            if len(seen) == 3:
                done.set()

        sink = Sink(loop, feed)
        events = [Event(float(t), "capture", LOG) for t in (1, 2, 3)]
        worker = threading.Thread(target=lambda: [sink.feed_threadsafe([e]) for e in events], name="capture")
        worker.start()
        await asyncio.wait_for(done.wait(), 5)
        worker.join()

    asyncio.run(scenario())
    assert [t for _, t in seen] == [1.0, 2.0, 3.0]
    assert {name for name, _ in seen} == {threading.main_thread().name}


def test_source_kinds_are_dotted_names_and_every_kind_builds(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    """The registry is a plain table of dotted names; the configured sources come from it."""
    assert all("." in kind for kind in SOURCE_KINDS)
    log = tmp_path / "auth.log"
    log.write_text("", encoding="utf-8")
    app = _app(tmp_path, clock, syslog_tcp=["127.0.0.1:0"], files=[str(log)])
    daemon = Daemon(app)
    assert sorted(type(s).__name__ for s in daemon.sources) == ["FollowedFile", "SyslogTcp", "SyslogUdp"]
    app.close()
    app.store.close()
