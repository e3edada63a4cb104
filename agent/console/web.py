"""The console's shared machinery: its services, the templates, who is asking, role checks, CSRF and auditing.

Every page handler is wrapped by `Console.page(role)` or `Console.action(role)`: the principal
comes from the connection (the verified client certificate, or a trusted proxy's header) and
never from the request's parameters; an action also needs the session's CSRF token. A refusal is
a 403 page; a refused action and every unmapped certificate are written to the audit log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..app.runs import RunService
from ..app.wiring import App
from ..config.console import ConsoleConfig
from ..control.identity import Role
from ..models import iso
from .health import HealthProvider
from .identity import ConsoleUsers, Principal, Refusal
from .queries import incidents_head
from .security import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, CsrfTokens, visible, visible_lines
from .tls import peer_certificate

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
CONSOLE_ACTOR = "watchstander:console"
_REFUSAL_AUDIT_EVERY_S = 60.0
MAX_FORM_FIELD = 8000

Handler = Callable[[Request, Principal], Awaitable[Response]]
T = TypeVar("T")


class FormProblem(Exception):
    """A form field is missing or malformed; the message is shown to the user."""


def _epoch(value: object) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def _when(value: object) -> str:
    """A time for people: 'YYYY-MM-DD HH:MM:SS UTC' from an ISO string or epoch seconds."""
    ts = _epoch(value)
    if ts is None:
        return "-" if value in (None, "") else visible(value, 60)
    shown = iso(ts) or "-"
    return shown[:19].replace("T", " ") + " UTC" if shown[:1].isdigit() else shown


def _pretty(value: object) -> str:
    """Plain, indented JSON for a page (escaped by autoescape, made visible by the `vlines` filter after it)."""
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=str)


def environment() -> Environment:
    """The Jinja2 environment: autoescape on for every template, the display filters registered."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters["v"] = visible
    env.filters["vlines"] = visible_lines
    env.filters["when"] = _when
    env.filters["epoch"] = _epoch
    env.filters["pretty"] = _pretty
    env.globals["urlencode"] = urlencode
    return env


@dataclass(frozen=True)
class Services:
    """What the console reads and acts through: the App, and what only a running daemon has."""

    app: App
    health: HealthProvider | None = None
    runs: Callable[[], RunService | None] | None = None


class Console:
    """One console instance: config, services, users, templates, CSRF tokens and the refusal audit throttle."""

    def __init__(self, services: Services, config: ConsoleConfig, *, poll_s: float = 1.0) -> None:
        self.services = services
        self.config = config
        self.users = ConsoleUsers(config)
        self.tokens = CsrfTokens()
        self.env = environment()
        self.poll_s = poll_s
        self.stopping = asyncio.Event()
        self._refusals: dict[tuple[str, str | None], float] = {}
        self.cache: dict[str, tuple[float, Any]] = {}  # (monotonic time, value) of slow-changing page parts
        self._head: tuple[float, tuple[Any, ...]] | None = None
        self._head_lock = asyncio.Lock()
        lifecycle = getattr(services.app, "incident_lifecycle", None)
        # Built at start: a console over an App without the lifecycle still serves every other page.
        self.lifecycle_factory: Callable[[], Any] | None = lifecycle if callable(lifecycle) else None

    async def incidents_head(self) -> tuple[Any, ...]:
        """The incidents' change fingerprint, read at most once per poll interval for all live streams together."""
        async with self._head_lock:
            now = time.monotonic()
            if self._head is None or now - self._head[0] >= self.poll_s * 0.9:
                self._head = (now, await run_in_threadpool(incidents_head, self.app.store))
            return self._head[1]

    @property
    def app(self) -> App:
        """The composition root."""
        return self.services.app

    # ------------------------------------------------------------------ who is asking

    def identify(self, request: Request) -> Principal | Refusal:
        """The principal of this request's connection (certificate or trusted proxy), or why there is none."""
        if self.config.auth == "proxy":
            client = request.scope.get("client")
            host = client[0] if client else None
            return self.users.from_proxy(host, request.headers.get(self.config.proxy_header))
        return self.users.from_certificate(peer_certificate(request.scope))

    async def audit(self, actor: str, action: str, subject: str, data: Mapping[str, Any]) -> None:
        """Append one audit record (in a worker thread: the store may block)."""
        await run_in_threadpool(self.app.audit.append, actor, action, subject, dict(data))

    async def refuse_unknown(self, request: Request, refusal: Refusal) -> Response:
        """403 for a connection with no principal; audited (at most once a minute per claimed name and reason)."""
        key = (refusal.reason, refusal.claimed)
        now = time.monotonic()
        if now - self._refusals.get(key, -1e9) >= _REFUSAL_AUDIT_EVERY_S:
            self._refusals[key] = now
            if len(self._refusals) > 4096:
                self._refusals.clear()
            client = request.scope.get("client")
            await self.audit(CONSOLE_ACTOR, "console.refused", f"console:{refusal.claimed or '-'}", {
                "reason": refusal.reason, "claimed": refusal.claimed, "path": request.url.path[:200],
                "peer": client[0] if client else None, "auth": self.config.auth})
        return self.render(request, "forbidden.html", {"reason": refusal.reason, "claimed": refusal.claimed},
                           None, status=403)

    # ------------------------------------------------------------------ rendering

    def session(self, request: Request) -> tuple[str, bool]:
        """The session id from the cookie, or a new one (True when new)."""
        current = request.cookies.get(SESSION_COOKIE)
        if current and 20 <= len(current) <= 100:
            return current, False
        return self.tokens.new_session(), True

    def render(self, request: Request, template: str, context: Mapping[str, Any], principal: Principal | None,
               *, status: int = 200) -> Response:
        """A page from `template` with the principal, the CSRF token and the navigation in its context."""
        session, new = self.session(request)
        token = self.tokens.token(session, principal.actor) if principal is not None else ""
        body = self.env.get_template(template).render(
            request=request, me=principal, csrf_token=token, csrf_field=CSRF_FIELD,
            lifecycle=self.lifecycle_factory is not None, can_revert=self.services.runs is not None,
            has_health=self.services.health is not None, **context)
        response = HTMLResponse(body, status_code=status)
        if new:
            response.set_cookie(SESSION_COOKIE, session, max_age=self.config.session_ttl_s, path="/",
                                secure=True, httponly=True, samesite="strict")
        return response

    def denied(self, request: Request, principal: Principal, role: Role) -> Response:
        """403 for a known person without the role a page or action needs."""
        return self.render(request, "forbidden.html", {"reason": f"this needs the {role} role",
                                                       "claimed": principal.name}, principal, status=403)

    # ------------------------------------------------------------------ guards

    def page(self, role: Role) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
        """Wrap a GET handler: a principal holding `role`, else 403."""
        def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                who = self.identify(request)
                if isinstance(who, Refusal):
                    return await self.refuse_unknown(request, who)
                if not who.has(role):
                    return self.denied(request, who, role)
                return await handler(request, who)
            return endpoint
        return wrap

    def action(self, role: Role) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
        """Wrap a POST handler: a principal holding `role` and this session's CSRF token, else 403 (audited)."""
        def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                who = self.identify(request)
                if isinstance(who, Refusal):
                    return await self.refuse_unknown(request, who)
                subject = f"console:{request.url.path[:200]}"
                if not who.has(role):
                    await self.audit(who.actor, "console.denied", subject, {"needs": role})
                    return self.denied(request, who, role)
                form = await request.form(max_files=0, max_fields=64)
                presented = request.headers.get(CSRF_HEADER) or _field(form, CSRF_FIELD)
                if not self.tokens.valid(request.cookies.get(SESSION_COOKIE), who.actor, presented):
                    await self.audit(who.actor, "console.csrf_refused", subject, {"path": request.url.path[:200]})
                    return self.render(request, "forbidden.html", {
                        "reason": "the form's security token is missing or does not match your session; "
                                  "reload the page and try again", "claimed": who.name}, who, status=403)
                request.state.form = form
                return await handler(request, who)
            return endpoint
        return wrap


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def form_text(request: Request, name: str, *, required: bool = False, limit: int = MAX_FORM_FIELD) -> str:
    """A text field of the action's form (already read by `Console.action`); FormProblem when required and empty."""
    form: FormData = request.state.form
    value = _field(form, name) or ""
    if len(value) > limit:
        raise FormProblem(f"{name}: at most {limit} characters")
    if required and not value.strip():
        raise FormProblem(f"{name}: required")
    return value


def query_int(request: Request, name: str, default: int, low: int = 1, high: int = 10**9) -> int:
    """A bounded integer query parameter (a bad one reads as the default)."""
    raw = request.query_params.get(name, "")
    try:
        value = int(raw)
    except ValueError:
        return default
    return min(max(value, low), high)


def path_id(request: Request, name: str = "id") -> int | None:
    """A positive integer path parameter, or None."""
    raw = str(request.path_params.get(name, ""))
    if not raw.isdigit() or len(raw) > 19:
        return None
    value = int(raw)
    return value if 0 < value <= 2**63 - 1 else None


def now_epoch(app: App) -> float:
    """The App clock's now as epoch seconds."""
    return app.clock().timestamp()
