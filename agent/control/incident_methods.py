"""The incident lifecycle over the control socket, as the authenticated caller.

    incidents.ack      operator  {id}                          -> {"incident": <lifecycle state>}
    incidents.assign   operator  {id, assignee: str | null}    -> {"incident": <lifecycle state>}
    incidents.comment  operator  {id, text}                    -> {"note": {...}}
    incidents.close    operator  {id, disposition, reason}     -> {"incident": <lifecycle state>}
    incidents.reopen   operator  {id, reason}                  -> {"incident": <lifecycle state>}
    incidents.notes    viewer    {id}                          -> {"notes": [...], "incident": <lifecycle state>}

Refusals travel as the lifecycle's typed errors (agent/errors.py IncidentError): wire codes
incident_not_found (exit 5), incident_transition (6), incident_input (4), incident_concurrent_update
(11), each with `details.reason` (already_closed, not_closed, bad_disposition...) and
`details.incident_id`. `incident_call` is the single implementation: the daemon's handlers and
the CLI's in-process mode both run it, so a command prints the same data either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import InvalidParams, UnknownMethod
from .identity import Identity, Role
from .registry import MethodRegistry

if TYPE_CHECKING:
    from ..app.incident_lifecycle import IncidentLifecycle

INCIDENT_METHODS: dict[str, Role] = {
    "incidents.ack": "operator",
    "incidents.assign": "operator",
    "incidents.comment": "operator",
    "incidents.close": "operator",
    "incidents.reopen": "operator",
    "incidents.notes": "viewer",
}
READ_ONLY_METHODS = frozenset({"incidents.notes"})
MAX_ID = 2**63 - 1
MAX_WIRE_TEXT = 100_000  # the lifecycle bounds texts itself (4000); this only refuses absurd requests early


def _id(params: dict[str, Any]) -> int:
    value = params.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise InvalidParams("id: expected a positive integer incident id")
    return value


def _str(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or len(value) > MAX_WIRE_TEXT:
        raise InvalidParams(f"{key}: expected a string")
    return value


def incident_call(lifecycle: IncidentLifecycle, method: str, principal: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one incidents.* lifecycle method as `principal`; the result the daemon would send."""
    if method == "incidents.notes":
        incident_id = _id(params)
        return {"notes": [n.as_dict() for n in lifecycle.notes(incident_id)],
                "incident": lifecycle.state(incident_id).as_dict()}
    if method == "incidents.ack":
        return {"incident": lifecycle.acknowledge(_id(params), principal).as_dict()}
    if method == "incidents.assign":
        assignee = params.get("assignee")
        if assignee is not None and not isinstance(assignee, str):
            raise InvalidParams("assignee: expected a string, or null to unassign")
        return {"incident": lifecycle.assign(_id(params), principal, assignee).as_dict()}
    if method == "incidents.comment":
        return {"note": lifecycle.comment(_id(params), principal, _str(params, "text")).as_dict()}
    if method == "incidents.close":
        state = lifecycle.close(_id(params), principal, _str(params, "disposition"), _str(params, "reason"))
        return {"incident": state.as_dict()}
    if method == "incidents.reopen":
        return {"incident": lifecycle.reopen(_id(params), principal, _str(params, "reason")).as_dict()}
    raise UnknownMethod(f"no incident method {method!r}")


def register_incident_methods(registry: MethodRegistry, lifecycle_factory: Callable[[], IncidentLifecycle]) -> None:
    """Register the incidents.* lifecycle methods with their roles; each call gets a lifecycle from the factory."""
    for name, role in INCIDENT_METHODS.items():
        def handler(identity: Identity, params: dict[str, Any], name: str = name) -> dict[str, Any]:
            return incident_call(lifecycle_factory(), name, identity.principal, params)

        registry.register_method(name, role, handler)
