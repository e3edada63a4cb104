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

from .assets import AssetIndex
from .audit import AuditLog
from .clock import Clock
from .config import AgentConfig
from .correlator import Correlator, refresh_summary
from .errors import InputError
from .incident_store import IncidentRepository
from .models import Incident
from .pipeline import Pipeline, open_events
from .store import Store
from .triage.baseline import BaselineAnalyst

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
        }


FileProgress = Callable[[int, int, str, int], None]  # (file index, file count, name, events so far)


def replay(files: Sequence[Path], config: AgentConfig, store: Store, clock: Clock, actor: str,
           progress: FileProgress | None = None) -> ReplayReport:
    """Run files through detection, correlation and baseline triage, and persist the incidents."""
    for p in files:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
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
    report.incidents = persist(pipeline.findings, config, store, clock, actor)
    report.seconds = time.perf_counter() - t0
    repo = IncidentRepository(store, clock)
    with store.begin() as conn:
        repo.record_run(conn, started.isoformat(), actor, report.as_dict())
    return report


def persist(findings: Sequence[Any], config: AgentConfig, store: Store, clock: Clock, actor: str) -> list[Incident]:
    """Correlate findings into incidents, triage each touched incident, store and audit the verdicts."""
    repo = IncidentRepository(store, clock)
    audit = AuditLog(store, clock)
    analyst = BaselineAnalyst(AssetIndex(config.assets), clock())
    out: list[Incident] = []
    with store.begin() as conn:
        def stored(entity: str, since: float) -> tuple[str, float, float] | None:
            hit = repo.find_open(conn, entity, since)
            if hit is None:
                return None
            inc = repo.load(conn, hit[0])
            return (inc.fingerprint, inc.first_seen, inc.last_seen) if inc else None

        correlator = Correlator(config.correlation.window_s, stored)
        for inc in correlator.add_all(findings):
            inc_id = repo.upsert_incident(conn, inc)
            repo.upsert_findings(conn, inc_id, inc.findings.values())
            full = repo.load(conn, inc_id)
            assert full is not None
            refresh_summary(full)
            full.verdict = analyst.triage(full)
            repo.set_verdict(conn, full)
            audit.append(actor, "triage.verdict", f"incident:{inc_id}", {
                "fingerprint": full.fingerprint,
                "severity": full.verdict.severity,
                "disposition": full.verdict.disposition,
                "confidence": full.verdict.confidence,
                "provenance": full.verdict.provenance.model_dump(mode="json"),
            }, conn=conn)
            out.append(full)
    return out
