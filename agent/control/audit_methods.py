"""The audit log over the control socket: `audit.verify` and paged `audit.records` (compliance role).

The same functions serve the daemon and the in-process CLI, so both modes print the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from ..store.audit import AuditLog, audit_log
from ..store.engine import Store
from .errors import InvalidParams
from .identity import Identity
from .registry import MethodRegistry

MAX_PAGE = 1000


def verify_result(audit: AuditLog) -> dict[str, Any]:
    """Walk the chain; the outcome as plain data (ok, checked, broken_seq, reason)."""
    r = audit.verify()
    return {"ok": r.ok, "checked": r.checked, "broken_seq": r.broken_seq, "reason": r.reason}


def record_page(store: Store, after_seq: int = 0, limit: int = MAX_PAGE, since: str | None = None) -> dict[str, Any]:
    """Up to `limit` records with seq > after_seq (and time >= since), as stored; `next` continues."""
    q = select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq).limit(limit)
    if since is not None:
        q = q.where(audit_log.c.time >= since)
    with store.engine.connect() as conn:
        records = [_plain(row._mapping) for row in conn.execute(q)]
    more = len(records) == limit
    return {"records": records, "next": records[-1]["seq"] if more else None}


def _plain(row: Any) -> dict[str, Any]:
    raw = row["data"]
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = raw  # a tampered row still exports, as the text it holds (verify names it)
    return {"seq": row["seq"], "time": row["time"], "actor": row["actor"], "action": row["action"],
            "subject": row["subject"], "data": data, "prev_hash": row["prev_hash"], "hash": row["hash"]}


def normalise_since(value: str | None) -> str | None:
    """An ISO 8601 time or date as the UTC ISO string records are compared with (naive means UTC)."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidParams(f"since: not an ISO 8601 time: {value!r}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


def _int_param(params: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParams(f"{key}: expected an integer from {low} to {high}")
    return value


def register_audit_methods(registry: MethodRegistry, store_factory: Callable[[], Store],
                           audit_factory: Callable[[], AuditLog]) -> None:
    """Register audit.verify and audit.records, both for the compliance role."""

    def verify(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        return verify_result(audit_factory())

    def records(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        since = params.get("since")
        if since is not None and not isinstance(since, str):
            raise InvalidParams("since: expected an ISO 8601 string")
        return record_page(store_factory(), _int_param(params, "after", 0, 0, 2**62),
                           _int_param(params, "limit", MAX_PAGE, 1, MAX_PAGE), normalise_since(since))

    registry.register_method("audit.verify", "compliance", verify)
    registry.register_method("audit.records", "compliance", records)
