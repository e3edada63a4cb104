"""Reading incidents and runs over the control socket (viewer role).

    incidents.list   viewer  {limit?}   -> {"incidents": [...]}
    incidents.show   viewer  {id}       -> {"incident": {...}}
    runs.list        viewer  {state?, limit?} -> {"runs": [...]}
    runs.show        viewer  {id}       -> {"run": {...}}

When a daemon runs, the store belongs to the service user alone; these methods are how operators
read it, with the role the socket's peer credentials map to. The same functions serve the
in-process CLI (no daemon), so both modes print the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..app.incident_view import guard_words, incident_json
from ..clock import Clock
from ..errors import NotFoundError
from ..store.engine import Store
from ..store.incidents import IncidentStore
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


def incidents_list(store: Store, clock: Clock, params: dict[str, Any]) -> dict[str, Any]:
    """Incidents, most severe first, without their findings."""
    items = IncidentStore(store, clock).list(limit=_int(params, "limit", 1000, MAX_LIMIT))
    return {"incidents": [incident_json(i, with_findings=False) for i in items]}


def incidents_show(store: Store, clock: Clock, params: dict[str, Any]) -> dict[str, Any]:
    """One incident with its findings, verdict and the guard's words on each recommended action."""
    incident_id = _int(params, "id", None, MAX_ID)
    inc = IncidentStore(store, clock).get(incident_id)
    if inc is None:
        raise NotFoundError(f"no incident with id {incident_id}")
    data = incident_json(inc)
    data["guard"] = [w.as_dict() if w else None for w in guard_words(store, inc)]
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
    registry.register_method("incidents.show", "viewer", handler(lambda s, p: incidents_show(s, clock, p)))
    registry.register_method("runs.list", "viewer", handler(runs_list))
    registry.register_method("runs.show", "viewer", handler(runs_show))
