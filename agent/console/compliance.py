"""Compliance pages: the EO 14409 / NSPM tracker as a table and chart, one obligation, updates and exports.

Everything goes through app/compliance.py, the use cases behind `watchstander guidance status /
show / update / export` and the control socket's guidance.* methods; the exports are the
guidance writers' own bytes (CSV, JSON, HTML, PDF, OSCAL POA&M) as of the chosen date.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlparse

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from watchstander.guidance.chart import timeline, to_svg
from watchstander.guidance.dates import parse_iso_date
from watchstander.guidance.errors import GuidanceError
from watchstander.guidance.evidence import resolve_evidence
from watchstander.guidance.tracker import STANDING_LABELS, STATUS_LABELS, STATUSES

from ..app.compliance import (
    EXPORT_FORMATS,
    export_bytes,
    guidance_errors,
    make_report,
    obligation_data,
    status_data,
    update_obligation,
)
from ..errors import NotFoundError, WatchstanderError
from .identity import Principal
from .web import Console, FormProblem, form_text

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "html": "text/html; charset=utf-8",
                 "pdf": "application/pdf", "oscal-poam": "application/json"}
SUFFIXES = {"oscal-poam": "oscal-poam.json"}
_OBLIGATION_ID = r"{id:str}"


def _as_of(console: Console, request: Request) -> tuple[date, str | None]:
    raw = request.query_params.get("as_of", "")
    today = console.app.clock().date()
    if not raw:
        return today, None
    try:
        return parse_iso_date(raw), None
    except ValueError:
        return today, f"as_of: {raw[:40]!r} is not a date in YYYY-MM-DD form; showing today"


def routes(console: Console) -> list[Route]:
    """The compliance routes of this console."""

    @console.page("viewer")
    async def tracker(request: Request, me: Principal) -> Response:
        as_of, problem = _as_of(console, request)
        try:
            data = await run_in_threadpool(status_data, console.app, as_of)
        except WatchstanderError as exc:
            return console.render(request, "compliance.html", {"data": None, "problem": str(exc), "rows": [],
                                                               "as_of": as_of, "filters": {}}, me, status=500)
        filters = {k: request.query_params.get(k, "")[:200] for k in ("standing", "owner", "order")}
        rows = [r for r in data["obligations"]
                if (not filters["standing"] or r["standing"] == filters["standing"])
                and (not filters["owner"] or filters["owner"].casefold() in (r.get("owner") or "").casefold())
                and (not filters["order"] or r["catalogue_id"] == filters["order"])]
        orders = sorted({(r["catalogue_id"], r["order"]) for r in data["obligations"]})
        return console.render(request, "compliance.html", {
            "data": data, "rows": rows, "as_of": as_of, "problem": problem, "filters": filters, "orders": orders,
            "standings": STANDING_LABELS, "formats": EXPORT_FORMATS}, me)

    @console.page("viewer")
    async def chart(request: Request, me: Principal) -> Response:
        as_of, _ = _as_of(console, request)

        def draw() -> str:
            with guidance_errors():
                report = make_report(console.app, as_of, actor=me.actor)
            return to_svg(timeline(report), f"Deadlines against the report date {as_of.isoformat()}")

        svg = await run_in_threadpool(draw)
        return Response(svg, media_type="image/svg+xml")

    async def obligation_page(request: Request, me: Principal, ob_id: str, refusal: dict[str, str] | None = None,
                              status: int = 200) -> Response:
        as_of, problem = _as_of(console, request)
        try:
            data = await run_in_threadpool(obligation_data, console.app, ob_id, as_of)
        except NotFoundError:
            return console.render(request, "not_found.html", {"what": "obligation"}, me, status=404)
        return console.render(request, "obligation.html", {
            "ob": data["obligation"], "history": data["history"], "as_of": as_of, "problem": problem,
            "statuses": STATUSES, "status_labels": STATUS_LABELS, "refusal": refusal}, me, status=status)

    @console.page("viewer")
    async def obligation(request: Request, me: Principal) -> Response:
        return await obligation_page(request, me, str(request.path_params["id"])[:200])

    @console.action("compliance")
    async def update(request: Request, me: Principal) -> Response:
        ob_id = str(request.path_params["id"])[:200]
        try:
            fields = _update_fields(request)
            await run_in_threadpool(lambda: update_obligation(console.app, ob_id, me.actor, **fields))
        except NotFoundError:
            return console.render(request, "not_found.html", {"what": "obligation"}, me, status=404)
        except (FormProblem, GuidanceError, WatchstanderError) as exc:
            return await obligation_page(request, me, ob_id, {"type": type(exc).__name__, "message": str(exc)}, 409)
        return RedirectResponse(f"/compliance/obligations/{ob_id}", status_code=303)

    @console.page("compliance")
    async def export(request: Request, me: Principal) -> Response:
        fmt = request.query_params.get("format", "")
        if fmt not in EXPORT_FORMATS:
            return console.render(request, "not_found.html", {"what": "export format"}, me, status=404)
        as_of, _ = _as_of(console, request)
        content, count = await run_in_threadpool(lambda: export_bytes(console.app, fmt, as_of, actor=me.actor))
        await console.audit(me.actor, "console.export", f"guidance:{fmt}", {"as_of": as_of.isoformat(),
                                                                             "obligations": count})
        name = f"guidance-report-{as_of.isoformat()}.{SUFFIXES.get(fmt, fmt)}"
        return Response(content, media_type=CONTENT_TYPES.get(fmt, "application/octet-stream"),
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return [
        Route("/compliance", tracker, methods=["GET"]),
        Route("/compliance/chart.svg", chart, methods=["GET"]),
        Route("/compliance/export", export, methods=["GET"]),
        Route(f"/compliance/obligations/{_OBLIGATION_ID}", obligation, methods=["GET"]),
        Route(f"/compliance/obligations/{_OBLIGATION_ID}", update, methods=["POST"]),
    ]


def _update_fields(request: Request) -> dict[str, Any]:
    """The update form as update_obligation's keywords; evidence is a URL (the daemon cannot read your files)."""
    status = form_text(request, "status").strip()
    if status and status not in STATUSES:
        raise FormProblem(f"status: one of {', '.join(STATUSES)}")
    fields: dict[str, Any] = {"status": status or None, "owner": form_text(request, "owner", limit=200).strip(),
                              "note": form_text(request, "note", limit=4000).strip() or None}
    url = form_text(request, "evidence", limit=2000).strip()
    if url:
        parsed = urlparse(url)
        # Checked before resolve_evidence, which would read a local path on this host.
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise FormProblem("evidence: give an http(s) URL; files are attached with `watchstander guidance update "
                              "--evidence FILE`, which hashes them where they are")
        fields["evidence"] = [resolve_evidence(url)]
    return fields
