"""SSH collection over the control socket.

    collect.list      viewer    {}                                  -> {"snapshots": [...]}
    collect.show      viewer    {device, command?, text?}           -> {"device", "commands": [...]}
    collect.baseline  approver  {device, command?, snapshot?}       -> {"device", "baselines": [...]}

Approving a baseline says "this configuration is the one we mean to run": drift from it becomes a
finding, so it takes the approver role. The same functions serve the in-process CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..app.collection import approve_baselines, collected, device_snapshots
from ..clock import Clock
from ..store.audit import AuditLog
from ..store.engine import Store
from .errors import InvalidParams
from .identity import Identity
from .registry import MethodRegistry

MAX_NAME = 300


def _text(params: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = params.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise InvalidParams(f"{key}: expected a non-empty string of at most {MAX_NAME} characters")
    return value


def _snapshot_id(params: dict[str, Any]) -> int | None:
    value = params.get("snapshot")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**63 - 1:
        raise InvalidParams("snapshot: expected a positive integer")
    return value


def register_collect_methods(registry: MethodRegistry, store_factory: Callable[[], Store],
                             audit_factory: Callable[[], AuditLog], clock: Clock) -> None:
    """Register collect.list, collect.show (viewer) and collect.baseline (approver)."""

    def list_(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        return collected(store_factory(), clock)

    def show(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        device = _text(params, "device", required=True)
        assert device is not None
        return device_snapshots(store_factory(), clock, device, _text(params, "command", required=False),
                                text=params.get("text") is True)

    def baseline(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        device = _text(params, "device", required=True)
        assert device is not None
        return approve_baselines(store_factory(), clock, audit_factory(), device, identity.principal,
                                 _text(params, "command", required=False), _snapshot_id(params))

    registry.register_method("collect.list", "viewer", list_)
    registry.register_method("collect.show", "viewer", show)
    registry.register_method("collect.baseline", "approver", baseline)
