"""The audit log over the control socket: `audit.verify` and paged `audit.records` (compliance role).

The same functions serve the daemon and the in-process CLI, so both modes print the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..store.audit import AuditLog, audit_log
from ..store.engine import Store
from ..store.seal import Sealer, SealError, SealPaths, load_public_key, parse_public_key, verify_sealed
from .errors import InvalidParams
from .identity import Identity
from .registry import MethodRegistry

MAX_PAGE = 1000


def verify_result(audit: AuditLog, store: Store | None = None, paths: SealPaths | None = None,
                  public_pem: bytes | None = None, trusted_keys: Sequence[Path] | None = None) -> dict[str, Any]:
    """Walk the chain and check its signed checkpoints; the outcome as plain data.

    The verification key is the one given (the auditor's own copy), else the one next to the
    signing key. Without either, only the unkeyed chain is walked and `sealing` says so. Other
    nodes' checkpoints in a shared store count when their keys are in `trusted_keys` (by default
    the sealer's `[audit] trusted_keys`).
    """
    if isinstance(audit.sealer, Sealer):
        paths = paths or audit.sealer.paths
        trusted_keys = audit.sealer.trusted_keys if trusted_keys is None else trusted_keys
    public = None
    try:
        if public_pem is not None:
            public = parse_public_key(public_pem)
        elif paths is not None and paths.public_key.exists():
            public = load_public_key(paths.public_key)
        trusted = [load_public_key(path) for path in trusted_keys or ()]
    except SealError as exc:
        raise InvalidParams(str(exc)) from exc
    if public is None or paths is None or store is None:
        r = audit.verify()
        return {"ok": r.ok, "checked": r.checked, "broken_seq": r.broken_seq, "reason": r.reason}
    s = verify_sealed(audit, store, paths.checkpoints, public, trusted)
    return {"ok": s.ok, "checked": s.checked, "broken_seq": s.broken_seq, "reason": s.reason, "sealing": True,
            "checkpoints": s.checkpoints, "sealed_through": s.sealed_through, "unsealed": list(s.unsealed),
            "key": s.key,
            "signers": [{"key": x.key, "checkpoints": x.checkpoints, "sealed_through": x.sealed_through, "own": x.own}
                        for x in s.signers],
            "untrusted": [{"key": k, "checkpoints": n} for k, n in s.untrusted], "notes": list(s.notes)}


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
    try:
        return when.astimezone(timezone.utc).isoformat()
    except OverflowError as exc:  # 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
        raise InvalidParams(f"since: out of range: {value!r}") from exc


def _int_param(params: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParams(f"{key}: expected an integer from {low} to {high}")
    return value


def register_audit_methods(registry: MethodRegistry, store_factory: Callable[[], Store],
                           audit_factory: Callable[[], AuditLog]) -> None:
    """Register audit.verify and audit.records, both for the compliance role."""

    def verify(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        pem = params.get("public_key")
        if pem is not None and (not isinstance(pem, str) or len(pem) > 4096):
            raise InvalidParams("public_key: expected a PEM string")
        return verify_result(audit_factory(), store_factory(), public_pem=pem.encode("ascii", "replace") if pem else None)

    def records(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        since = params.get("since")
        if since is not None and not isinstance(since, str):
            raise InvalidParams("since: expected an ISO 8601 string")
        return record_page(store_factory(), _int_param(params, "after", 0, 0, 2**62),
                           _int_param(params, "limit", MAX_PAGE, 1, MAX_PAGE), normalise_since(since))

    registry.register_method("audit.verify", "compliance", verify)
    registry.register_method("audit.records", "compliance", records)
