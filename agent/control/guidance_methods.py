"""The deadline tracker over the control socket.

    guidance.status  viewer      {as_of?, orders?, as_recorded?}              -> status_data
    guidance.show    viewer      {id, as_of?}                                 -> {"obligation", "history"}
    guidance.export  compliance  {format, as_of?, orders?, title?, as_recorded?}
                                                                              -> {"format", "content_b64", "obligations"}
    guidance.update  compliance  {id, status?, owner?, note?, evidence?, due?, reason?, clear_due?, completed_on?}
    guidance.event   compliance  {name, date, note?}                          -> {"referenced": bool}
    guidance.add     compliance  {order, obligation: {...}}                   -> {"id"}

When a daemon runs, the store belongs to the service user alone; these are how a compliance officer
reads and changes the tracker, under the identity the socket's peer credentials give. Evidence files
are hashed by the client (the daemon cannot read a user's files): `evidence` carries the references.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import date
from typing import Any

from watchstander.guidance.dates import parse_iso_date
from watchstander.guidance.evidence import EvidenceRef

from ..app.compliance import (
    EXPORT_FORMATS,
    add_obligation,
    export_bytes,
    obligation_data,
    record_event,
    status_data,
    update_obligation,
)
from ..app.wiring import App
from .errors import InvalidParams
from .identity import Identity
from .registry import MethodRegistry

MAX_TEXT = 4000
MAX_EVIDENCE = 64


def _date(params: dict[str, Any], key: str, default: date | None) -> date | None:
    value = params.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidParams(f"{key}: expected a date in YYYY-MM-DD form")
    try:
        day: date = parse_iso_date(value)
    except ValueError as exc:
        raise InvalidParams(f"{key}: {value!r} is not a date in YYYY-MM-DD form") from exc
    return day


def _str(params: dict[str, Any], key: str, *, required: bool = False, empty: bool = False) -> str | None:
    value = params.get(key)
    if value is None:
        if required:
            raise InvalidParams(f"{key}: required")
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT or (not value and not empty):
        raise InvalidParams(f"{key}: expected a string of at most {MAX_TEXT} characters")
    return value


def _strings(params: dict[str, Any], key: str) -> list[str] | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 64 or not all(isinstance(v, str) and v for v in value):
        raise InvalidParams(f"{key}: expected a list of names")
    return value


def _evidence(params: dict[str, Any]) -> list[EvidenceRef]:
    raw = params.get("evidence") or []
    if not isinstance(raw, list) or len(raw) > MAX_EVIDENCE:
        raise InvalidParams(f"evidence: expected a list of at most {MAX_EVIDENCE} references")
    refs = []
    for item in raw:
        if not isinstance(item, dict) or item.get("kind") not in ("file", "url") \
                or not isinstance(item.get("ref"), str) or not 0 < len(item["ref"]) <= MAX_TEXT:
            raise InvalidParams("evidence: each item needs kind (file|url) and ref")
        digest, size = item.get("sha256"), item.get("size")
        if digest is not None and (not isinstance(digest, str) or len(digest) != 64):
            raise InvalidParams("evidence: sha256 must be 64 hex digits")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise InvalidParams("evidence: size must be a byte count")
        refs.append(EvidenceRef(item["kind"], item["ref"], digest, size))
    return refs


def evidence_params(refs: list[EvidenceRef]) -> list[dict[str, Any]]:
    """Evidence references as the `evidence` parameter carries them."""
    return [{"kind": e.kind, "ref": e.ref, "sha256": e.sha256, "size": e.size} for e in refs]


def register_guidance_methods(registry: MethodRegistry, app_factory: Callable[[], App]) -> None:
    """Register guidance.status/show (viewer) and guidance.export/update/event/add (compliance)."""

    def today() -> date:
        return app_factory().clock().date()

    def status(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        as_of = _date(params, "as_of", None) or today()
        return status_data(app_factory(), as_of, _strings(params, "orders"),
                           as_recorded=params.get("as_recorded") is True)

    def show(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        ob_id = _str(params, "id", required=True)
        assert ob_id is not None
        return obligation_data(app_factory(), ob_id, _date(params, "as_of", None) or today())

    def export(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        fmt = params.get("format")
        if fmt not in EXPORT_FORMATS:
            raise InvalidParams(f"format: one of {', '.join(EXPORT_FORMATS)}")
        content, count = export_bytes(app_factory(), fmt, _date(params, "as_of", None) or today(),
                                      _strings(params, "orders"), _str(params, "title"),
                                      params.get("as_recorded") is True, actor=identity.principal)
        return {"format": fmt, "content_b64": base64.b64encode(content).decode("ascii"), "obligations": count}

    def update(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        ob_id = _str(params, "id", required=True)
        assert ob_id is not None
        state = update_obligation(
            app_factory(), ob_id, identity.principal, status=_str(params, "status"),
            owner=_str(params, "owner", empty=True), note=_str(params, "note"), evidence=_evidence(params),
            due=_date(params, "due", None), reason=_str(params, "reason"),
            clear_due=params.get("clear_due") is True, completed_on=_date(params, "completed_on", None))
        return {"state": state.model_dump(mode="json")}

    def event(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        name = _str(params, "name", required=True)
        day = _date(params, "date", None)
        if name is None or day is None:
            raise InvalidParams("name and date are required")
        return {"referenced": record_event(app_factory(), name, day, identity.principal, _str(params, "note"))}

    def add(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        order = _str(params, "order", required=True)
        fields = params.get("obligation")
        if order is None or not isinstance(fields, dict):
            raise InvalidParams("order and obligation are required")
        ob = add_obligation(app_factory(), order, dict(fields), identity.principal)
        return {"id": ob.id, "section": ob.section}

    registry.register_method("guidance.status", "viewer", status)
    registry.register_method("guidance.show", "viewer", show)
    registry.register_method("guidance.export", "compliance", export)
    registry.register_method("guidance.update", "compliance", update)
    registry.register_method("guidance.event", "compliance", event)
    registry.register_method("guidance.add", "compliance", add)
