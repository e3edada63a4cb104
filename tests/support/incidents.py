"""Incidents written into a real SQLite store the way detection writes them (IncidentStore upserts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from watchstander.agent.app.wiring import App
from watchstander.agent.clock import Clock
from watchstander.agent.config.load import validate_config
from watchstander.agent.models import Finding, Incident
from watchstander.agent.store.schema import open_store

BASE = 1_795_000_000.0  # 2026-11-18, a fixed epoch for reproducible incidents


def make_app(tmp_path: Path, clock: Clock, **config: Any) -> App:
    """An App over a fresh, migrated SQLite store in tmp_path (close its store when done)."""
    db = tmp_path / "w.db"
    store = open_store(f"sqlite:///{db}")
    return App(validate_config({"store": {"url": f"sqlite:///{db}"}, **config}), store, clock)


def finding(detector: str = "portscan", attacker: str = "203.0.113.5", victim: str = "10.20.0.10", *,
            severity: str = "high", first: float = BASE, last: float | None = None,
            techniques: tuple[str, ...] = ("T1046",), count: int = 5) -> Finding:
    """One finding about attacker → victim."""
    return Finding(detector, f"{detector} from {attacker}", severity,  # type: ignore[arg-type]
                   {"attacker": attacker, "victim": victim}, techniques, first,
                   first + 60 if last is None else last, count, {"events": count}, {}, [])


def write_incident(app: App, fingerprint: str, findings: list[Finding], *, title: str | None = None,
                   entity: str | None = None, severity: str = "high") -> int:
    """Upsert one incident with its findings as decide() would (no triage); returns its id."""
    first = min(f.first_seen for f in findings)
    last = max(f.last_seen for f in findings)
    ent = entity or findings[0].entities.get("attacker", "unknown")
    inc = Incident(fingerprint, ent, title or findings[0].title, severity, first, last,  # type: ignore[arg-type]
                   {f.key: f for f in findings})
    repo = app.incident_store()
    with app.store.begin() as conn:
        iid = repo.upsert_incident(conn, inc)
        repo.upsert_findings(conn, iid, findings)
    return iid
