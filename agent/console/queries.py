"""The console's list pages as bounded queries: one page of rows and a total, whatever the store holds.

Incidents are listed by the application's own search (app/incident_query.py); suggestions and
runs are read here through the store's row types (suggestion_from_row, load_approvals_for,
run_from_row) with LIMIT/OFFSET, so a page costs the same with ten rows or ten thousand. Nothing
here decides: the review queue and the other services do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from ..store.engine import Store
from ..store.incidents import finding_sensors, findings, incident_notes, incidents
from ..store.runs import Run, run_from_row, runs
from ..store.suggestions import STATES, Suggestion, load_approvals_for, suggestion_from_row, suggestions

MAX_PAGE = 100_000


@dataclass(frozen=True)
class Page:
    """One page of rows, where it is, and how many rows there are in all."""

    rows: Sequence[Any]
    page: int
    size: int
    total: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        """How many pages there are (at least one)."""
        return max(1, math.ceil(self.total / self.size))


def incidents_head(store: Store) -> tuple[Any, ...]:
    """A fingerprint of the incidents and their notes that changes with any of them: what the live list watches."""
    t = incidents
    with store.engine.connect() as conn:
        # Every lifecycle change also writes a note, so the newest note id covers assignments and comments.
        row = conn.execute(select(func.count(), func.max(t.c.id), func.max(t.c.updated_at),
                                  func.max(t.c.status_changed_at))).one()
        note = conn.execute(select(func.max(incident_notes.c.id))).scalar()
    return (*tuple(row), note)


def detector_names(store: Store) -> list[str]:
    """Every detector that has findings in the store (for the filter's choices)."""
    with store.engine.connect() as conn:
        return [str(d) for d in conn.execute(select(findings.c.detector).distinct().order_by(findings.c.detector))
                .scalars()]


def sensor_names(store: Store) -> list[str]:
    """Every sensor ([agent] name) that has findings in the store (for the filter's choices)."""
    with store.engine.connect() as conn:
        return [str(n) for n in conn.execute(select(finding_sensors.c.sensor).distinct()
                                             .order_by(finding_sensors.c.sensor)).scalars()]


def suggestions_page(store: Store, state: str | None, page: int, size: int,
                     incident_id: int | None = None) -> Page:
    """One page of suggestions with their approvals, newest first (call the queue's expire_due first)."""
    page = min(max(page, 1), MAX_PAGE)
    t = suggestions
    where = []
    if state in STATES:
        where.append(t.c.state == state)
    if incident_id is not None:
        where.append(t.c.incident_id == incident_id)
    with store.engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one())
        rows = conn.execute(select(t).where(*where).order_by(t.c.id.desc())
                            .limit(size).offset((page - 1) * size)).all()
        approvals = load_approvals_for(conn, [r.id for r in rows])
        counts = {str(r[0]): int(r[1]) for r in conn.execute(select(t.c.state, func.count()).group_by(t.c.state))}
    items: list[Suggestion] = [suggestion_from_row(r, approvals.get(r.id, ())) for r in rows]
    return Page(items, page, size, total, {"by_state": counts})


def runs_page(store: Store, state: str | None, page: int, size: int) -> Page:
    """One page of runs without their steps, newest first."""
    page = min(max(page, 1), MAX_PAGE)
    t = runs
    where = [t.c.state == state] if state else []
    with store.engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one())
        rows = conn.execute(select(t).where(*where).order_by(t.c.id.desc())
                            .limit(size).offset((page - 1) * size)).all()
    items: list[Run] = [run_from_row(r) for r in rows]
    return Page(items, page, size, total)


def store_counts(store: Store) -> dict[str, Any]:
    """Rows per table the console shows on the health page, by state where there is one."""
    with store.engine.connect() as conn:
        return {
            "incidents": int(conn.execute(select(func.count()).select_from(incidents)).scalar_one()),
            "findings": int(conn.execute(select(func.count()).select_from(findings)).scalar_one()),
            "suggestions": {str(r[0]): int(r[1]) for r in conn.execute(
                select(suggestions.c.state, func.count()).group_by(suggestions.c.state))},
            "runs": {str(r[0]): int(r[1]) for r in conn.execute(select(runs.c.state, func.count()).group_by(runs.c.state))},
        }
