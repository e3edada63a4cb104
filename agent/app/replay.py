"""Replay: files through the whole pipeline into the store, with a summary of what was found."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchstander.connectors.errors import SourceError
from watchstander.connectors.skips import SkipCounter

from .audit import AuditLog
from .clock import Clock
from .config import AgentConfig
from .correlator import Correlator, refresh_summary
from .errors import InputError
from .incident_store import IncidentRepository
from .models import Incident
from .pipeline import Pipeline, open_events
from .store import Store
from .services import Services
from .triage.baseline import BaselineAnalyst
from .triage.site import asset_context

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


FileProgress = Callable[[int, int, str, int], None]  # (file index, file count, name, events so far)


def replay(files: Sequence[Path], config: AgentConfig, store: Store, clock: Clock, actor: str,
           progress: FileProgress | None = None, services: Services | None = None) -> ReplayReport:
    """Run files through detection, correlation and triage; store incidents and queue suggestions."""
    for p in files:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
    own = services is None
    svc = services or Services.build(config, store, clock)  # a bad triage config stops us before reading
    try:
        return _replay(files, config, store, clock, actor, progress, svc)
    finally:
        if own:
            svc.close()


def _replay(files: Sequence[Path], config: AgentConfig, store: Store, clock: Clock, actor: str,
            progress: FileProgress | None, svc: Services) -> ReplayReport:
    started = clock()
    t0 = time.perf_counter()
    pipeline = Pipeline(config.detectors)
    report = ReplayReport()
    for i, path in enumerate(files, 1):
        skips = SkipCounter(log, str(path))
        f0 = time.perf_counter()
        try:
            fmt, events = open_events(path, clock, skips)
            cb = (lambda n, i=i, name=path.name: progress(i, len(files), name, n)) if progress else None
            n = pipeline.feed_all(events, cb)
        except SourceError as exc:
            raise InputError(str(exc)) from exc
        report.files.append(FileReport(str(path), fmt, n, dict(skips.counts), round(time.perf_counter() - f0, 3)))
        report.events += n
    report.findings = len(pipeline.findings)
    report.detector_failures = dict(pipeline.failures)
    report.incidents = persist(pipeline.findings, config, store, clock, actor, svc)
    report.seconds = time.perf_counter() - t0
    repo = IncidentRepository(store, clock)
    with store.begin() as conn:
        repo.record_run(conn, started.isoformat(), actor, report.as_dict())
    return report


def persist(findings: Sequence[Any], config: AgentConfig, store: Store, clock: Clock, actor: str,
            services: Services | None = None) -> list[Incident]:
    """Correlate findings into incidents, triage each touched one, guard its actions and queue suggestions."""
    own = services is None
    svc = services or Services.build(config, store, clock)
    try:
        return _persist(findings, config, store, clock, actor, svc)
    finally:
        if own:
            svc.close()


def _persist(findings: Sequence[Any], config: AgentConfig, store: Store, clock: Clock, actor: str,
             svc: Services) -> list[Incident]:
    repo = IncidentRepository(store, clock)
    audit = AuditLog(store, clock)
    analyst = BaselineAnalyst(svc.assets, clock())
    touched: list[int] = []
    with store.begin() as conn:
        correlator = Correlator(config.correlation.window_s,
                                lambda entity, since: repo.find_open(conn, entity, since))
        for inc in correlator.add_all(findings):
            inc_id = repo.upsert_incident(conn, inc)
            repo.upsert_findings(conn, inc_id, inc.findings.values())
            touched.append(inc_id)
    out: list[Incident] = []
    for inc_id in touched:
        full = repo.get(inc_id)
        assert full is not None
        refresh_summary(full)
        # The model is asked with no transaction open: a slow answer must not hold the store.
        verdict = svc.triage.triage(full, analyst.triage(full), asset_context(full, svc.assets))
        full.verdict = verdict
        with store.begin() as conn:
            repo.set_verdict(conn, full)
            audit.append(actor, "triage.verdict", f"incident:{inc_id}", {
                "fingerprint": full.fingerprint,
                "severity": verdict.severity,
                "disposition": verdict.disposition,
                "confidence": verdict.confidence,
                "techniques": list(verdict.techniques),
                "provenance": verdict.provenance.model_dump(mode="json"),
            }, conn=conn)
            outcome = svc.review.review(full, verdict, actor=actor, conn=conn)
        full.outcome = outcome
        out.append(full)
    return out
