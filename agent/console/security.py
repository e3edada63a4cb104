"""The console's browser-facing defences: security headers, the CSRF token, and inert display of hostile text.

CSRF: a synchronizer token bound to the session and the principal. The session is a random
value in a `__Host-` cookie (Secure, HttpOnly, SameSite=Strict); the token is an HMAC of the
session id and the principal's actor name under a key that lives only in this process. A POST
must carry it (form field `csrf_token` or header `X-CSRF-Token`); a token made for another
session or another person does not match, and neither does one from before a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..app.text import show_invisible

SESSION_COOKIE = "__Host-ws_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
# An SVG chart is fetched as an image: it may style itself, never script.
IMAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class CsrfTokens:
    """Issues sessions and checks the token bound to (session, principal)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    @staticmethod
    def new_session() -> str:
        """A fresh random session id."""
        return secrets.token_urlsafe(32)

    def token(self, session: str, actor: str) -> str:
        """The CSRF token for this session and person."""
        return hmac.new(self._key, f"{session}\n{actor}".encode(), hashlib.sha256).hexdigest()

    def valid(self, session: str | None, actor: str, presented: str | None) -> bool:
        """Whether `presented` is the token of this session and person (constant-time)."""
        if not session or not presented:
            return False
        return hmac.compare_digest(self.token(session, actor).encode(), presented.encode())


class SecurityHeaders:
    """ASGI middleware: CSP, framing, sniffing, referrer and HSTS headers on every response; no-store on data."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to the response start of every HTTP request."""
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        static = path.startswith("/static/")

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in (
                    b"content-security-policy", b"cache-control")]
                policy = IMAGE_CSP if path.endswith(".svg") else CSP
                headers.append((b"content-security-policy", policy.encode()))
                headers.extend(SECURITY_HEADERS)
                headers.append((b"cache-control", b"private, max-age=300" if static else b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, sending)


def visible(value: object, limit: int | None = 4000) -> str:
    """Text from telemetry or a model with control, format (bidi, zero-width) and separator characters shown escaped.

    HTML escaping (Jinja2's autoescape) makes markup inert; this makes invisible characters visible,
    so a right-to-left override or an ANSI escape cannot make a line read other than it is.
    """
    text = "" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return show_invisible(text)


def visible_lines(value: object, limit: int | None = 20000) -> str:
    """`visible` for a block: newlines kept (and tabs), everything else invisible shown escaped."""
    text = "" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "\n[… truncated]"
    return "\n".join(visible(line.replace("\t", "    "), None) for line in text.split("\n"))
