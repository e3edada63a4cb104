"""Incident pages: the live list (with its htmx rows partial and SSE stream), one incident, and its lifecycle actions.

The list is the application's filtered search (app/incident_query.py); the incident page reads
the incident through the store's IncidentStore and the guard's decisions through
app/incident_view.py; lifecycle actions call the App's IncidentLifecycle, which audits each
change and refuses with typed errors shown as they are.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..app.incident_query import query_from_params, search_incidents
from ..app.incident_view import guard_words
from ..errors import IncidentError, InputError
from ..models import SEVERITIES
from ..store.engine import Store
from ..store.incidents import DISPOSITIONS, STATUSES, IncidentStore
from .identity import Principal
from .queries import detector_names, sensor_names, suggestions_page
from .web import Console, FormProblem, form_text, now_epoch, path_id, query_int

SINCE_CHOICES: dict[str, float] = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
HEARTBEAT_S = 15.0
MAX_EVIDENCE_SHOWN = 50


def _filters(request: Request) -> dict[str, str]:
    """The list's filters as given in the query string (kept for links and the live refresh)."""
    keys = ("severity", "status", "detector", "sensor", "asset", "q", "since")
    return {k: request.query_params[k][:300] for k in keys if request.query_params.get(k)}


def _search(console: Console, filters: dict[str, str], page: int) -> tuple[Any, str | None]:
    size = console.config.page_size
    params: dict[str, Any] = {"limit": size, "offset": (page - 1) * size}
    if filters.get("severity"):
        params["min_severity"] = filters["severity"]
    if filters.get("status"):
        params["status"] = filters["status"]
    for mine, theirs in (("detector", "detector"), ("sensor", "sensor"), ("asset", "asset"), ("q", "search")):
        if filters.get(mine):
            params[theirs] = filters[mine]
    since = SINCE_CHOICES.get(filters.get("since", ""))
    if since is not None:
        params["seen_after"] = now_epoch(console.app) - since
    try:
        query = query_from_params(params)
    except InputError as exc:
        return None, str(exc)
    return search_incidents(console.app.store, console.app.clock, query), None


def routes(console: Console) -> list[Route]:
    """The incident routes of this console."""

    async def list_context(request: Request) -> dict[str, Any]:
        filters = _filters(request)
        page = query_int(request, "page", 1, 1, 10**6)
        result, problem = await run_in_threadpool(_search, console, filters, page)
        total = result.total if result is not None else 0
        pages = max(1, -(-total // console.config.page_size))
        return {"result": result, "problem": problem, "filters": filters, "page": page, "pages": pages,
                "total": total, "severities": SEVERITIES, "statuses": STATUSES, "since_choices": list(SINCE_CHOICES)}

    @console.page("viewer")
    async def incidents(request: Request, me: Principal) -> Response:
        context = await list_context(request)
        context["detectors"] = await run_in_threadpool(_choices, console, "detectors", detector_names)
        context["sensors"] = await run_in_threadpool(_choices, console, "sensors", sensor_names)
        return console.render(request, "incidents.html", context, me)

    @console.page("viewer")
    async def rows(request: Request, me: Principal) -> Response:
        return console.render(request, "incident_rows.html", await list_context(request), me)

    @console.page("viewer")
    async def events(request: Request, me: Principal) -> Response:
        return StreamingResponse(_stream(console, request), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    @console.page("viewer")
    async def incident(request: Request, me: Principal) -> Response:
        incident_id = path_id(request)
        context = await run_in_threadpool(_incident_context, console, incident_id) if incident_id else None
        if context is None:
            return console.render(request, "not_found.html", {"what": "incident"}, me, status=404)
        context["problem"] = request.query_params.get("problem", "")[:500] or None
        return console.render(request, "incident.html", context, me)

    def lifecycle_action(what: str) -> Any:
        @console.action("operator")
        async def act(request: Request, me: Principal) -> Response:
            incident_id = path_id(request)
            if incident_id is None or console.lifecycle_factory is None:
                return console.render(request, "not_found.html", {"what": "incident"}, me, status=404)
            try:
                await run_in_threadpool(_lifecycle_call, console, what, incident_id, me.actor, request)
            except (IncidentError, FormProblem) as exc:
                context = await run_in_threadpool(_incident_context, console, incident_id)
                if context is None:
                    return console.render(request, "not_found.html", {"what": "incident"}, me, status=404)
                context["refusal"] = _refusal(exc)
                return console.render(request, "incident.html", context, me, status=409)
            return RedirectResponse(f"/incidents/{incident_id}", status_code=303)
        return act

    out = [
        Route("/incidents", incidents, methods=["GET"]),
        Route("/incidents/rows", rows, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/incidents/{id}", incident, methods=["GET"]),
    ]
    if console.lifecycle_factory is not None:
        out += [Route(f"/incidents/{{id}}/{what}", lifecycle_action(what), methods=["POST"])
                for what in ("acknowledge", "assign", "comment", "close", "reopen")]
    return out


_CHOICES_TTL_S = 30.0


def _choices(console: Console, what: str, read: Callable[[Store], list[str]]) -> list[str]:
    """A filter's choices (detectors, sensors), read again at most every 30 s (a DISTINCT over every finding)."""
    now = time.monotonic()
    cached = console.cache.get(what)
    if cached is None or now - cached[0] > _CHOICES_TTL_S:
        cached = (now, read(console.app.store))
        console.cache[what] = cached
    names: list[str] = cached[1]
    return names


def _refusal(exc: Exception) -> dict[str, Any]:
    """A typed refusal as the page shows it: its type, its machine reason and its message."""
    return {"type": type(exc).__name__, "reason": getattr(exc, "reason", None) or getattr(exc, "default_reason", None),
            "message": str(exc)}


def _lifecycle_call(console: Console, what: str, incident_id: int, actor: str, request: Request) -> None:
    assert console.lifecycle_factory is not None
    lifecycle = console.lifecycle_factory()
    if what == "acknowledge":
        lifecycle.acknowledge(incident_id, actor)
    elif what == "assign":
        assignee = form_text(request, "assignee").strip()
        lifecycle.assign(incident_id, actor, assignee or None)
    elif what == "comment":
        lifecycle.comment(incident_id, actor, form_text(request, "text", required=True))
    elif what == "close":
        lifecycle.close(incident_id, actor, form_text(request, "disposition", required=True),
                        form_text(request, "reason", required=True))
    elif what == "reopen":
        lifecycle.reopen(incident_id, actor, form_text(request, "reason", required=True))


def _incident_context(console: Console, incident_id: int) -> dict[str, Any] | None:
    app = console.app
    inc = IncidentStore(app.store, app.clock).get(incident_id)
    if inc is None:
        return None
    findings = sorted(inc.findings.values(), key=lambda f: (f.first_seen, f.last_seen))
    words = guard_words(app.store, inc)
    actions = list(zip(inc.verdict.recommended_actions, words)) if inc.verdict else []
    suggestions = suggestions_page(app.store, None, 1, 100, incident_id=incident_id).rows
    flags = sorted({flag for s in suggestions for flag in s.flags})
    state = notes = None
    if console.lifecycle_factory is not None:
        lifecycle = console.lifecycle_factory()
        try:
            state, notes = lifecycle.state(incident_id), lifecycle.notes(incident_id)
        except IncidentError:
            state, notes = None, None
    sensors = sorted({name for names in inc.sensors.values() for name in names})
    return {"inc": inc, "findings": findings, "sensors": sensors, "actions": actions, "suggestions": suggestions, "flags": flags,
            "state": state, "notes": notes or [], "dispositions": DISPOSITIONS, "max_evidence": MAX_EVIDENCE_SHOWN,
            "refusal": None}


async def _stream(console: Console, request: Request) -> AsyncIterator[str]:
    """Server-sent events: `incidents` whenever the incidents (or their notes) change; a comment as heartbeat."""
    seen: tuple[Any, ...] | None = None
    idle = 0.0
    yield "retry: 3000\n\n"
    while not console.stopping.is_set():
        head = await console.incidents_head()
        if head != seen:
            if seen is not None:
                yield f"event: incidents\ndata: {json.dumps({'count': head[0], 'max_id': head[1]})}\n\n"
            seen = head
            idle = 0.0
        elif idle >= HEARTBEAT_S:
            yield ": keep-alive\n\n"
            idle = 0.0
        try:
            await asyncio.wait_for(console.stopping.wait(), timeout=console.poll_s)
        except TimeoutError:
            idle += console.poll_s
