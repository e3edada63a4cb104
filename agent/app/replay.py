"""Replay: files through the whole pipeline into the store, with a summary of what was found."""

from __future__ import annotations

import errno
import logging
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchstander.connectors.errors import SourceError
from watchstander.connectors.formats import open_file
from watchstander.connectors.skips import SkipCounter

from ..detection.pipeline import Pipeline
from ..errors import InputError
from ..models import Incident
from ..store.incidents import IncidentStore
from .decide import decide
from .wiring import App

log = logging.getLogger(__name__)


@dataclass
class FileReport:
    """What one input file contributed."""

    path: str
    format: str
    events: int
    skipped: dict[str, int]
    seconds: float


@dataclass
class ReplayReport:
    """The summary `replay` prints."""

    files: list[FileReport] = field(default_factory=list)
    events: int = 0
    findings: int = 0
    incidents: list[Incident] = field(default_factory=list)
    seconds: float = 0.0
    detector_failures: dict[str, int] = field(default_factory=dict)

    @property
    def suggestions(self) -> list[Any]:
        """Suggestions created by this run (pending, or approved when autonomy allows)."""
        return [s for i in self.incidents if i.outcome for s in i.outcome.created]

    @property
    def refused(self) -> list[Any]:
        """Guard decisions that refused an action in this run."""
        return [d for i in self.incidents if i.outcome for d in i.outcome.decisions if not d.allowed]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "files": [vars(f) for f in self.files],
            "events": self.events,
            "findings": self.findings,
            "incidents": [i.id for i in self.incidents],
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds) if self.seconds else None,
            "detector_failures": self.detector_failures,
            "suggestions": [s.id for s in self.suggestions],
            "refused_actions": len(self.refused),
        }


def check_input(path: Path) -> None:
    """Refuse anything but a regular file (after symlinks), saying what it is; never opens it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: symlink loop") from None
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from exc
    except ValueError:  # a NUL byte: no file can have this name
        raise InputError(f"{str(path)!r}: no such file") from None
    if stat.S_ISREG(mode):
        return
    # Opening a FIFO for reading waits for a writer, and a device may never end: refuse both
    # before anything opens them.
    if stat.S_ISDIR(mode):
        what = "is a directory"
    elif stat.S_ISFIFO(mode):
        what = "is a named pipe (FIFO)"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        what = "is a device"
    elif stat.S_ISSOCK(mode):
        what = "is a socket"
    else:
        what = "is not a regular file"
    raise InputError(f"{path}: {what}")


FileProgress = Callable[[int, int, str, int], None]  # (file index, file count, name, events so far)


def replay(app: App, files: Sequence[Path], actor: str, progress: FileProgress | None = None) -> ReplayReport:
    """Run files through detection, correlation and triage; store incidents and queue suggestions."""
    for p in files:
        check_input(p)
    app.triage  # noqa: B018  (a bad triage config or key stops us before reading anything)
    started = app.clock()
    t0 = time.perf_counter()
    pipeline = Pipeline(app.config.detectors)
    report = ReplayReport()
    for i, path in enumerate(files, 1):
        skips = SkipCounter(log, str(path))
        f0 = time.perf_counter()
        try:
            fmt, events = open_file(path, app.clock, skips)
            cb = (lambda n, i=i, name=path.name: progress(i, len(files), name, n)) if progress else None
            n = pipeline.feed_all(events, cb)
        except SourceError as exc:
            raise InputError(str(exc)) from exc
        report.files.append(FileReport(str(path), fmt, n, {**skips.counts, **skips.repaired}, round(time.perf_counter() - f0, 3)))
        report.events += n
    report.findings = len(pipeline.findings)
    report.detector_failures = dict(pipeline.failures)
    report.incidents = decide(app, pipeline.findings, actor)
    report.seconds = time.perf_counter() - t0
    with app.store.begin() as conn:
        IncidentStore(app.store, app.clock).record_run(conn, started.isoformat(), actor, report.as_dict())
    return report
