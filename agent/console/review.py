"""Suggestion pages: the queue, one suggestion with exactly what it will run, and approve / reject.

Every read and decision goes through `review_call`, the control socket's single implementation
over the App's review queue: the two-person rule, self-approval, expiry, single use, hash binding
and every refusal are the queue's, and a refusal is shown as the queue's typed error (its class,
its reason code and its message). The console only insists that a person writes why.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..control.errors import error_code
from ..control.review_methods import review_call
from ..errors import WatchstanderError
from ..policy.errors import ReviewError, SuggestionNotFound
from ..store.suggestions import STATES
from .identity import Principal
from .queries import suggestions_page
from .web import Console, FormProblem, form_text, now_epoch, path_id, query_int

DEFAULT_STATE = "pending"


def _refusal(exc: Exception) -> dict[str, Any]:
    """The queue's typed refusal as the page shows it."""
    return {"type": type(exc).__name__, "code": error_code(exc), "reason": getattr(exc, "reason", None),
            "state": getattr(exc, "state", None), "message": str(exc)}


def routes(console: Console) -> list[Route]:
    """The suggestion routes of this console."""

    def queue_page(state: str | None, page: int) -> Any:
        queue = console.app.review_queue()
        queue.expire_due()  # so that the states shown are current, as suggestions.list does
        return suggestions_page(console.app.store, state, page, console.config.page_size)

    @console.page("viewer")
    async def suggestions(request: Request, me: Principal) -> Response:
        raw = request.query_params.get("state", DEFAULT_STATE)
        state = raw if raw in STATES else None  # "all" (or anything else) lists every state
        page = query_int(request, "page", 1, 1, 10**6)
        result = await run_in_threadpool(queue_page, state, page)
        return console.render(request, "suggestions.html", {
            "result": result, "state": state or "all", "states": STATES, "page": page,
            "now": now_epoch(console.app)}, me)

    def show(suggestion_id: int) -> dict[str, Any]:
        answer = review_call(console.app.review_queue(), "suggestions.show", "", {"id": suggestion_id})
        return {"s": answer["suggestion"], "will_run": answer.get("will_run"),
                "will_run_error": answer.get("will_run_error")}

    async def detail(request: Request, me: Principal, suggestion_id: int, refusal: dict[str, Any] | None = None,
                     status: int = 200) -> Response:
        try:
            context = await run_in_threadpool(show, suggestion_id)
        except SuggestionNotFound:
            return console.render(request, "not_found.html", {"what": "suggestion"}, me, status=404)
        context.update(refusal=refusal, now=now_epoch(console.app),
                       approved_by_me=any(a["approver"] == me.actor for a in context["s"]["approvals"]))
        return console.render(request, "suggestion.html", context, me, status=status)

    @console.page("viewer")
    async def suggestion(request: Request, me: Principal) -> Response:
        suggestion_id = path_id(request)
        if suggestion_id is None:
            return console.render(request, "not_found.html", {"what": "suggestion"}, me, status=404)
        return await detail(request, me, suggestion_id)

    def decision(method: str, field: str) -> Any:
        @console.action("approver")
        async def decide(request: Request, me: Principal) -> Response:
            suggestion_id = path_id(request)
            if suggestion_id is None:
                return console.render(request, "not_found.html", {"what": "suggestion"}, me, status=404)
            try:
                text = form_text(request, "justification", required=True, limit=2000)
                params = {"id": suggestion_id, field: text}
                # The principal is the connection's; the queue records and audits it.
                await run_in_threadpool(review_call, console.app.review_queue(), method, me.actor, params)
            except FormProblem as exc:
                return await detail(request, me, suggestion_id, {"type": "FormProblem", "code": "input",
                                                                 "reason": None, "message": str(exc)}, 400)
            except (ReviewError, ValueError, WatchstanderError) as exc:
                return await detail(request, me, suggestion_id, _refusal(exc), 409)
            return RedirectResponse(f"/suggestions/{suggestion_id}", status_code=303)
        return decide

    return [
        Route("/suggestions", suggestions, methods=["GET"]),
        Route("/suggestions/{id}", suggestion, methods=["GET"]),
        Route("/suggestions/{id}/approve", decision("suggestions.approve", "comment"), methods=["POST"]),
        Route("/suggestions/{id}/reject", decision("suggestions.reject", "reason"), methods=["POST"]),
    ]
