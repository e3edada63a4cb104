"""The review queue over the control socket: suggestions.* as the authenticated caller.

    suggestions.list     viewer    {state?, incident?, limit?}        -> {"suggestions": [...]}
    suggestions.show     viewer    {id}                               -> {"suggestion": {...}}
    suggestions.approve  approver  {id, comment?}                     -> {"suggestion": {...}}
    suggestions.reject   approver  {id, reason}                       -> {"suggestion": {...}}
    suggestions.edit     operator  {id, changes: {input: value}, comment?} -> {"suggestion": <the new one>}

Rejecting needs the approver role, not operator: a rejection is as final as an approval (the
suggestion never runs), so an operator account -- or someone who took one over during an
attack -- must not be able to quietly reject every containment step. Operators who disagree with
a suggestion edit it or tell an approver.

`review_call` is the single implementation; the daemon's handlers and the CLI's in-process mode
(`via_daemon_or_local(..., lambda who: review_call(queue, name, who, params))`) both use it, so a
command prints the same data either way. The actor passed to the queue is always a principal the
caller cannot choose: the socket's peer credentials, or the invoking OS user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from watchstander.playbooks import PlaybookError
from watchstander.playbooks.runner import describe

from ..store.suggestions import STATES, Suggestion
from .errors import InvalidParams, UnknownMethod
from .identity import Identity, Role
from .registry import MethodRegistry

if TYPE_CHECKING:
    from ..policy.review import ReviewQueue

REVIEW_METHODS: dict[str, Role] = {
    "suggestions.list": "viewer",
    "suggestions.show": "viewer",
    "suggestions.approve": "approver",
    "suggestions.reject": "approver",
    "suggestions.edit": "operator",
}
MAX_TEXT = 2000
MAX_LIST = 1000


def will_run(queue: ReviewQueue, s: Suggestion) -> dict[str, Any]:
    """What approving `s` would run, step by step, exactly as the runner renders it (or why it cannot)."""
    try:
        playbook = queue.guard.catalogue.get(s.playbook_id)
        if playbook.content_hash != s.playbook_hash:
            return {"will_run": None, "will_run_error": f"playbook {s.playbook_id} changed since this suggestion "
                                                        "was made; it cannot run"}
        steps = playbook.render(s.parameters, queue.guard.inventory)
    except PlaybookError as exc:
        return {"will_run": None, "will_run_error": str(exc)[:500]}
    return {"will_run": [{"section": st.section, "step": st.id, "action": st.action, "target": st.target,
                          "command": describe(st), "timeout_s": st.timeout_s} for st in steps]}


def _id(params: dict[str, Any]) -> int:
    value = params.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParams("id: expected a positive integer suggestion id")
    return value


def _text(params: dict[str, Any], key: str, required: bool = False) -> str:
    value = params.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise InvalidParams(f"{key}: expected a string of at most {MAX_TEXT} characters")
    if required and not value.strip():
        raise InvalidParams(f"{key}: must not be empty")
    return value


def _optional_int(params: dict[str, Any], key: str, default: int | None, high: int = 2**62) -> int | None:
    value = params.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise InvalidParams(f"{key}: expected an integer from 1 to {high}")
    return value


def _changes(params: dict[str, Any]) -> dict[str, object]:
    changes = params.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise InvalidParams("changes: expected an object of input name -> new value")
    for name, value in changes.items():
        ok_list = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not (isinstance(value, str) or ok_list or (isinstance(value, int) and not isinstance(value, bool))):
            raise InvalidParams(f"changes.{name}: expected a string, an integer or a list of strings")
    return dict(changes)


def review_call(queue: ReviewQueue, method: str, principal: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one suggestions.* method on `queue` as `principal`; the result the daemon would send."""
    if method == "suggestions.list":
        state = params.get("state")
        if state is not None and state not in STATES:
            raise InvalidParams(f"state: one of {', '.join(STATES)}")
        incident = _optional_int(params, "incident", None)
        limit = _optional_int(params, "limit", 500, MAX_LIST)
        queue.expire_due()  # so that the states shown are current
        items = queue.list(state, incident, limit or 500)
        return {"suggestions": [s.as_dict() for s in items]}
    if method == "suggestions.show":
        queue.expire_due()
        s = queue.get(_id(params))
        return {"suggestion": s.as_dict(), **will_run(queue, s)}
    if method == "suggestions.approve":
        return {"suggestion": queue.approve(_id(params), principal, _text(params, "comment")).as_dict()}
    if method == "suggestions.reject":
        return {"suggestion": queue.reject(_id(params), principal, _text(params, "reason", required=True)).as_dict()}
    if method == "suggestions.edit":
        new = queue.edit(_id(params), principal, _changes(params), _text(params, "comment"))
        return {"suggestion": new.as_dict()}
    raise UnknownMethod(f"no review method {method!r}")


def register_review_methods(registry: MethodRegistry, queue_factory: Callable[[], ReviewQueue]) -> None:
    """Register suggestions.* with their roles; each call gets a queue from `queue_factory`."""
    for name, role in REVIEW_METHODS.items():
        def handler(identity: Identity, params: dict[str, Any], name: str = name) -> dict[str, Any]:
            return review_call(queue_factory(), name, identity.principal, params)

        registry.register_method(name, role, handler)
