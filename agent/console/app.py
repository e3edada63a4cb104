"""The console as a Starlette application over the App: routes, static files, security headers.

    build_console(app, config, health=..., runs=...) -> ConsoleApp (an ASGI app)

Pages are thin views over the services the CLI and the control socket use (see each route
module); nothing here decides policy. `health` is a read-only provider of the daemon's live
counters and `runs` the daemon's run service (for revert); without them those parts say so.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..app.runs import RunService
from ..app.wiring import App
from ..config.console import ConsoleConfig
from . import compliance, incidents, review, runs, status
from .health import HealthProvider
from .security import SecurityHeaders
from .web import STATIC, Console, Services


class ConsoleApp(SecurityHeaders):
    """The console's ASGI application (security headers outermost) and the Console behind it."""

    def __init__(self, console: Console, starlette: Starlette) -> None:
        super().__init__(starlette)
        self.console = console
        self.starlette = starlette


def build_console(app: App, config: ConsoleConfig, *, health: HealthProvider | None = None,
                  runs_service: Callable[[], RunService | None] | None = None, poll_s: float = 1.0) -> ConsoleApp:
    """The console over `app` with `config`; `health` and `runs_service` come from a running daemon."""
    console = Console(Services(app, health, runs_service), config, poll_s=poll_s)

    async def home(request: Request) -> Response:
        return RedirectResponse("/incidents", status_code=302)

    routes: list[BaseRoute] = [Route("/", home, methods=["GET"])]
    for module in (incidents, review, runs, compliance, status):
        routes.extend(module.routes(console))
    routes.append(Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"))
    return ConsoleApp(console, Starlette(routes=routes))
