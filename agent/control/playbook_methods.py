"""Playbook definitions over the control socket: approving one needs the admin role.

    playbooks.approve  admin  {id, content_hash, comment?}
                              -> {"approval": {..., "approvers": [...], "required": N, "complete": bool},
                                  "already": bool, "before": "<status before>"}

The caller names the content it reviewed by its SHA-256; the daemon approves its own catalogue's
playbook of that id only if it is exactly that content, so what runs is what was reviewed. A
high-risk definition needs two distinct people: the first admin's approval is recorded as
pending, and a second admin completes it (the store counts people by uid).

`approve_definition` is the single implementation; the daemon's handler and the CLI's in-process
mode both use it, so `watchstander playbooks approve` prints the same data either way.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from watchstander.playbooks import Catalogue, Playbook, UnknownPlaybookError

from ..errors import InputError, NotFoundError
from ..store.approvals import ApprovalStore
from .errors import InvalidParams, UnknownMethod
from .identity import Identity, Role
from .registry import MethodRegistry

PLAYBOOK_METHODS: dict[str, Role] = {
    "playbooks.approve": "admin",
}
MAX_COMMENT = 2000
_HEX = frozenset(string.hexdigits.lower())


def approve_definition(approvals: ApprovalStore, playbook: Playbook, principal: str,
                       comment: str = "") -> dict[str, Any]:
    """Record `principal`'s approval of this exact content; the result playbooks.approve sends."""
    before = approvals.status(playbook)
    already = approvals.current(playbook) is not None
    approval = approvals.approve(playbook, principal, comment)
    data = asdict(approval)
    data["approvers"] = list(approval.approvers)
    data["complete"] = approval.complete
    return {"approval": data, "already": already, "before": before.value}


def _text(params: dict[str, Any], key: str, limit: int) -> str:
    value = params.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidParams(f"{key}: expected a string of at most {limit} characters")
    return value


def _content_hash(params: dict[str, Any]) -> str:
    value = params.get("content_hash")
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise InvalidParams("content_hash: expected the SHA-256 (64 lower-case hex digits) of the reviewed file")
    return value


def playbook_call(approvals: ApprovalStore, catalogue: Catalogue, method: str, principal: str,
                  params: dict[str, Any]) -> dict[str, Any]:
    """Run one playbooks.* method as `principal` against `catalogue`; the result the daemon would send."""
    if method == "playbooks.approve":
        playbook_id = _text(params, "id", 64)
        content_hash = _content_hash(params)
        comment = _text(params, "comment", MAX_COMMENT)
        if not playbook_id:
            raise InvalidParams("id: expected a playbook id")
        try:
            playbook = catalogue.get(playbook_id)
        except UnknownPlaybookError:
            raise NotFoundError(f"playbook {playbook_id!r} is not in the daemon's catalogue (the shipped "
                                "library and [playbooks] dirs)") from None
        if playbook.content_hash != content_hash:
            raise InputError(f"the daemon's playbook {playbook_id!r} is sha256 {playbook.content_hash[:12]}, not "
                             f"the {content_hash[:12]} you reviewed; review the file the daemon loads "
                             f"({playbook.source})")
        return approve_definition(approvals, playbook, principal, comment)
    raise UnknownMethod(f"no playbook method {method!r}")


def register_playbook_methods(registry: MethodRegistry, approvals: Callable[[], ApprovalStore],
                              catalogue: Callable[[], Catalogue]) -> None:
    """Register playbooks.* with their roles, over the daemon's approvals and current catalogue."""
    for name, role in PLAYBOOK_METHODS.items():
        def handler(identity: Identity, params: dict[str, Any], name: str = name) -> dict[str, Any]:
            return playbook_call(approvals(), catalogue(), name, identity.principal, params)

        registry.register_method(name, role, handler)
