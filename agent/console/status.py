"""The health page (admin): the daemon's sources, pipeline, flushes and model calls, the queue and the store."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .health import HealthSnapshot, store_health
from .identity import Principal
from .web import Console


def routes(console: Console) -> list[Route]:
    """The health route of this console."""

    @console.page("admin")
    async def health(request: Request, me: Principal) -> Response:
        provider = console.services.health
        snapshot = provider() if provider is not None else HealthSnapshot()
        store = await run_in_threadpool(store_health, console.app.store, console.app.config.store.resolved_url())
        runs = console.services.runs() if console.services.runs is not None else None
        in_flight = len(runs.in_flight) if runs is not None else None
        return console.render(request, "health.html", {"snap": snapshot, "store": store, "in_flight": in_flight,
                                                       "live": provider is not None}, me)

    return [Route("/health", health, methods=["GET"])]
