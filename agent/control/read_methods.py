"""Reading incidents and runs over the control socket (viewer role).

    incidents.list   viewer  {limit?, status?, min_severity?, severity?, detector?, search?, asset?,
                              assignee?, seen_after?, seen_before?}
                                        -> {"incidents": [...]}  (most severe first, findings left out)
    incidents.search viewer  {the same filters, limit? (<= 1000), offset?}
                                        -> {"incidents": [rows], "total": N, "limit", "offset"}
                                           (newest activity first; the console's listing)
    incidents.show   viewer  {id}       -> {"incident": {..., "assignee", "disposition", "lifecycle", "notes"}}
    runs.list        viewer  {state?, limit?} -> {"runs": [...]}
    runs.show        viewer  {id}       -> {"run": {...}}

When a daemon runs, the store belongs to the service user alone; these methods are how operators
read it, with the role the socket's peer credentials map to. The same functions serve the
in-process CLI (no daemon), so both modes print the same data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..app.incident_query import query_from_params, search_incidents
from ..app.incident_view import guard_words, incident_json
from ..clock import Clock
from ..errors import InputError, NotFoundError
from ..store.engine import Store
from ..store.incidents import IncidentStore, list_order
from ..store.runs import RUN_STATES, list_runs, load_run
from .errors import InvalidParams
from .identity import Identity
from .registry import MethodRegistry

MAX_ID = 2**63 - 1
MAX_LIMIT = 1_000_000


def _int(params: dict[str, Any], key: str, default: int | None, high: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise InvalidParams(f"{key}: expected an integer from 1 to {high}")
    return value


def _query(params: dict[str, Any], **fixed: Any) -> Any:
    try:
        return query_from_params({k: v for k, v in params.items() if k not in fixed})
    except InputError as exc:
        raise InvalidParams(str(exc)) from exc


def incidents_list(store: Store, clock: Clock, params: dict[str, Any]) -> dict[str, Any]:
    """Incidents matching the filters, most severe first, without their findings."""
    limit = _int(params, "limit", 1000, MAX_LIMIT)
    query = dataclasses.replace(_query(params, limit=limit), limit=limit)
    repo = IncidentStore(store, clock)
    rows = {r.id: r for r in repo.search(query).rows}
    with store.engine.connect() as conn:
        items = [inc for i in rows if (inc := repo.load(conn, i)) is not None]
    items.sort(key=list_order)
    out = []
    for inc in items:
        data = incident_json(inc, with_findings=False)
        assert inc.id is not None
        data.update(assignee=rows[inc.id].assignee, disposition=rows[inc.id].disposition)
        out.append(data)
    return {"incidents": out}


def incidents_search(store: Store, clock: Clock, params: dict[str, Any]) -> dict[str, Any]:
    """One page of the console's listing: rows newest activity first, and the total that match."""
    return search_incidents(store, clock, _query(params)).as_dict()


def incidents_show(store: Store, clock: Clock, params: dict[str, Any]) -> dict[str, Any]:
    """One incident with its findings, verdict and the guard's words on each recommended action."""
    incident_id = _int(params, "id", None, MAX_ID)
    inc = IncidentStore(store, clock).get(incident_id)
    if inc is None:
        raise NotFoundError(f"no incident with id {incident_id}")
    data = incident_json(inc)
    data["guard"] = [w.as_dict() if w else None for w in guard_words(store, inc)]
    found = IncidentStore(store, clock).lifecycle(incident_id)
    if found is not None:
        state, notes = found
        data.update(assignee=state.assignee, disposition=state.disposition, lifecycle=state.as_dict(),
                    notes=[n.as_dict() for n in notes])
    return {"incident": data}


def runs_list(store: Store, params: dict[str, Any]) -> dict[str, Any]:
    """Runs, newest first, without their steps."""
    state = params.get("state")
    if state is not None and state not in RUN_STATES:
        raise InvalidParams(f"state: one of {', '.join(RUN_STATES)}")
    with store.engine.connect() as conn:
        items = list_runs(conn, state, _int(params, "limit", 100, 10000))
    return {"runs": [r.as_dict() for r in items]}


def runs_show(store: Store, params: dict[str, Any]) -> dict[str, Any]:
    """One run with every step."""
    run_id = _int(params, "id", None, MAX_ID)
    with store.engine.connect() as conn:
        run = load_run(conn, run_id)
    if run is None:
        raise NotFoundError(f"no run {run_id}")
    return {"run": run.as_dict()}


def register_read_methods(registry: MethodRegistry, store_factory: Callable[[], Store], clock: Clock) -> None:
    """Register incidents.* and runs.* reads for the viewer role."""

    def handler(fn: Callable[[Store, dict[str, Any]], dict[str, Any]]) -> Callable[[Identity, dict[str, Any]],
                                                                                   dict[str, Any]]:
        def call(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
            return fn(store_factory(), params)
        return call

    registry.register_method("incidents.list", "viewer", handler(lambda s, p: incidents_list(s, clock, p)))
    registry.register_method("incidents.search", "viewer", handler(lambda s, p: incidents_search(s, clock, p)))
    registry.register_method("incidents.show", "viewer", handler(lambda s, p: incidents_show(s, clock, p)))
    registry.register_method("runs.list", "viewer", handler(runs_list))
    registry.register_method("runs.show", "viewer", handler(runs_show))
