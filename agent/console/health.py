"""What the health page shows: the daemon's live counters (through a read-only provider) and the store's.

The console does not import the daemon: whoever serves it passes a callable returning a
`HealthSnapshot` (`daemon_health(daemon)` reads the same attributes the Prometheus collector
does, by name, so a missing attribute shows as "-" instead of failing the page).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..store.engine import Store
from .queries import store_counts

_FLUSH_FIELDS = ("flushes", "incidents_written", "flush_failures", "last_flush_duration_s", "pending_findings",
                 "poisoned_findings", "flush_failing_for_s", "last_flush_error", "reloads", "reload_failures",
                 "newest_event", "watchdog_pings", "spool_findings", "spool_bytes", "spool_dropped", "spool_delivered", "store_ready",
                 "recovery_attempts", "recovery_error")


@dataclass(frozen=True)
class SourceHealth:
    """One running source and its counters."""

    name: str
    counters: dict[str, float]


@dataclass(frozen=True)
class HealthSnapshot:
    """The daemon's state at one moment, as plain data."""

    sources: list[SourceHealth] = field(default_factory=list)
    pipeline: dict[str, Any] = field(default_factory=dict)
    flush: dict[str, Any] = field(default_factory=dict)
    triage: dict[str, Any] = field(default_factory=dict)


HealthProvider = Callable[[], HealthSnapshot]


def _copy(counter: Any) -> dict[str, Any]:
    for _ in range(3):  # a source adding a key while we copy: try again
        try:
            return dict(counter) if isinstance(counter, Mapping) else {}
        except RuntimeError:
            continue
    return {}


def daemon_health(daemon: Any) -> HealthSnapshot:
    """A snapshot of a running daemon (sources, pipeline, flush, triage), read by attribute name."""
    sources = [SourceHealth(str(getattr(s, "name", "?")),
                            {k: v for k, v in sorted(_copy(getattr(s, "counters", {})).items())
                             if isinstance(v, (int, float))})
               for s in list(getattr(daemon, "sources", []))]
    pipeline = getattr(daemon, "pipeline", None)
    pipe = {"events": getattr(pipeline, "events", None),
            "findings_tracked": len(getattr(pipeline, "findings", []) or []),
            "detector_failures": _copy(getattr(pipeline, "failures", {}))}
    flush = {name: getattr(daemon, name, None) for name in _FLUSH_FIELDS}
    app = getattr(daemon, "app", None)
    service = vars(app).get("triage") if app is not None else None  # never build the model service here
    triage = {"model_calls": getattr(service, "model_calls", None),
              "fallbacks": _copy(getattr(service, "fallbacks", {}))}
    return HealthSnapshot(sources, pipe, flush, triage)


def store_health(store: Store, url: str) -> dict[str, Any]:
    """The store's row counts and, for SQLite, the size of its file (and WAL)."""
    out: dict[str, Any] = {"url_kind": url.split(":", 1)[0]}
    try:
        out.update(store_counts(store))
        out["readable"] = True
    except SQLAlchemyError:
        out["readable"] = False
    database = store.engine.url.database
    if store.engine.url.get_backend_name() == "sqlite" and database:
        size = 0
        for suffix in ("", "-wal"):
            try:
                size += os.stat(database + suffix).st_size
            except OSError:
                continue
        out["size_bytes"] = size
    return out
