"""Run pages: the runs, one run step by step with its output, and revert through the daemon's run service."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..control.identity import Role
from ..errors import WatchstanderError
from ..store.runs import RUN_STATES, load_run
from .identity import Principal
from .queries import runs_page
from .web import Console, path_id, query_int

# Reverting runs a playbook's stored rollback on real devices: the approver's decision, not an operator's.
REVERT_ROLE: Role = "approver"


def routes(console: Console) -> list[Route]:
    """The run routes of this console."""

    @console.page("viewer")
    async def runs(request: Request, me: Principal) -> Response:
        raw = request.query_params.get("state", "")
        state = raw if raw in RUN_STATES else None
        page = query_int(request, "page", 1, 1, 10**6)
        result = await run_in_threadpool(runs_page, console.app.store, state, page, console.config.page_size)
        return console.render(request, "runs.html", {"result": result, "state": state or "all",
                                                     "states": RUN_STATES, "page": page}, me)

    def load(run_id: int) -> object:
        with console.app.store.engine.connect() as conn:
            return load_run(conn, run_id)

    async def show(request: Request, me: Principal, run_id: int, refusal: dict[str, str] | None = None,
                   status: int = 200) -> Response:
        found = await run_in_threadpool(load, run_id)
        if found is None:
            return console.render(request, "not_found.html", {"what": "run"}, me, status=404)
        return console.render(request, "run.html", {"run": found, "refusal": refusal,
                                                    "revert_role": REVERT_ROLE}, me, status=status)

    @console.page("viewer")
    async def run(request: Request, me: Principal) -> Response:
        run_id = path_id(request)
        if run_id is None:
            return console.render(request, "not_found.html", {"what": "run"}, me, status=404)
        return await show(request, me, run_id)

    @console.action(REVERT_ROLE)
    async def revert(request: Request, me: Principal) -> Response:
        run_id = path_id(request)
        if run_id is None:
            return console.render(request, "not_found.html", {"what": "run"}, me, status=404)
        service = console.services.runs() if console.services.runs is not None else None
        if service is None:
            return await show(request, me, run_id, {"type": "Unavailable", "message":
                                                    "reverting needs the daemon's run service"}, 503)
        try:
            await service.revert(run_id, me.actor)  # audited by the service, as this person
        except WatchstanderError as exc:
            return await show(request, me, run_id, {"type": type(exc).__name__, "message": str(exc)}, 409)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    return [
        Route("/runs", runs, methods=["GET"]),
        Route("/runs/{id}", run, methods=["GET"]),
        Route("/runs/{id}/revert", revert, methods=["POST"]),
    ]
