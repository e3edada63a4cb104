"""Approve and reject through the console: the review queue's own rules, its typed refusals, CSRF on every POST."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from support.console_kit import ConsoleSite, MovableClock, csrf_token

from watchstander.agent.console.demo_pki import DEMO_PEOPLE

pytestmark = pytest.mark.integration

OPERATOR, APPROVER, APPROVER_2, COMPLIANCE, UNMAPPED = (p.upn for p in DEMO_PEOPLE)


def _decide(http: httpx.Client, sid: int, what: str = "approve", text: str = "checked the evidence") -> httpx.Response:
    token = csrf_token(http.get(f"/suggestions/{sid}").text)
    return http.post(f"/suggestions/{sid}/{what}", data={"csrf_token": token, "justification": text})


def _refusal(page: httpx.Response) -> tuple[str | None, str | None]:
    text = page.text
    if 'data-refusal-type="' not in text:
        return None, None
    kind = text.split('data-refusal-type="')[1].split('"')[0]
    code = text.split('data-refusal-code="')[1].split('"')[0]
    return kind, code


def test_the_suggestion_page_shows_exactly_what_will_run(site: ConsoleSite) -> None:
    s = site.suggest(site.incident())
    with site.client("operator") as http:
        page = http.get(f"/suggestions/{s.id}")
    assert page.status_code == 200
    expected = site.app.review_queue().guard.catalogue.get(s.playbook_id).render(s.parameters, site.app.devices)
    from watchstander.playbooks.runner import describe

    for step in expected:
        assert describe(step).replace('"', "&#34;").replace("'", "&#39;") in page.text
    assert 'data-testid="expiry-countdown"' in page.text
    assert 'data-testid="form-approve"' not in page.text  # an operator does not approve


def test_medium_risk_is_approved_by_one_approver_as_the_certificate_s_principal(site: ConsoleSite) -> None:
    s = site.suggest(site.incident())
    with site.client("approver") as http:
        answer = _decide(http, s.id, text="the address is the attacker's")
        assert (answer.status_code, answer.headers["location"]) == (303, f"/suggestions/{s.id}")
    done = site.app.review_queue().get(s.id)
    assert done.state == "approved"
    assert [(a.approver, a.comment) for a in done.approvals] == [(f"console:{APPROVER}", "the address is the attacker's")]
    assert any(r.actor == f"console:{APPROVER}" and r.subject == f"suggestion:{s.id}" for r in site.app.audit.records())


def test_high_risk_stays_pending_until_a_second_approver(site: ConsoleSite) -> None:
    s = site.suggest(site.incident(), "switch-port-shutdown", if_index=7)
    assert s.approvals_required == 2
    with site.client("approver") as http:
        assert _decide(http, s.id).status_code == 303
        assert site.app.review_queue().get(s.id).state == "pending"
        again = _decide(http, s.id)
    assert again.status_code == 409 and _refusal(again) == ("DuplicateApprover", "duplicate_approver")
    with site.client("approver-2") as http:
        assert _decide(http, s.id).status_code == 303
    assert site.app.review_queue().get(s.id).state == "approved"


def test_the_requester_cannot_approve_their_own(site: ConsoleSite) -> None:
    original = site.suggest(site.incident())
    # An edit makes the editor the requester of the new suggestion (the queue's rule, not the console's).
    mine = site.app.review_queue().edit(original.id, f"console:{APPROVER}", {"address": "203.0.113.10"})
    with site.client("approver") as http:
        refused = _decide(http, mine.id)
    assert refused.status_code == 409
    assert _refusal(refused) == ("RequesterCannotApprove", "requester_cannot_approve")
    assert site.app.review_queue().get(mine.id).state == "pending"
    assert any(r.action == "suggestion.approve_refused" and r.actor == f"console:{APPROVER}"
               for r in site.app.audit.records())


def test_an_expired_suggestion_cannot_be_approved(site_factory: Callable[..., ConsoleSite]) -> None:
    clock = MovableClock()
    site = site_factory(clock=clock)
    s = site.suggest(site.incident())
    with site.client("approver") as http:
        token = csrf_token(http.get(f"/suggestions/{s.id}").text)
        clock.advance(seconds=site.app.config.policy.suggestion_ttl_s + 1)
        refused = http.post(f"/suggestions/{s.id}/approve", data={"csrf_token": token, "justification": "late"})
    assert refused.status_code == 409 and _refusal(refused) == ("SuggestionExpired", "suggestion_expired")
    assert site.app.review_queue().get(s.id).state == "expired"


def test_reject_needs_a_reason_and_is_recorded(site: ConsoleSite) -> None:
    s = site.suggest(site.incident())
    with site.client("approver") as http:
        empty = _decide(http, s.id, "reject", "   ")
        assert empty.status_code == 400 and site.app.review_queue().get(s.id).state == "pending"
        assert _decide(http, s.id, "reject", "scanner is ours").status_code == 303
    done = site.app.review_queue().get(s.id)
    assert (done.state, done.decided_by, done.reason) == ("rejected", f"console:{APPROVER}", "scanner is ours")


def test_posts_without_the_session_s_token_are_refused(site: ConsoleSite) -> None:
    s = site.suggest(site.incident())
    with site.client("approver") as http:
        http.get(f"/suggestions/{s.id}")  # has a session cookie now
        missing = http.post(f"/suggestions/{s.id}/approve", data={"justification": "x"})
        wrong = http.post(f"/suggestions/{s.id}/approve", data={"csrf_token": "0" * 64, "justification": "x"})
    with site.client("approver-2") as other:
        theirs = csrf_token(other.get(f"/suggestions/{s.id}").text)
    with site.client("approver") as http:
        http.get(f"/suggestions/{s.id}")
        borrowed = http.post(f"/suggestions/{s.id}/approve", data={"csrf_token": theirs, "justification": "x"})
    with site.client("approver") as fresh:  # the right person's token, but no session cookie
        token = csrf_token(fresh.get(f"/suggestions/{s.id}").text)
    with site.client("approver") as cookieless:
        no_cookie = cookieless.post(f"/suggestions/{s.id}/approve", data={"csrf_token": token, "justification": "x"})
    assert [r.status_code for r in (missing, wrong, borrowed, no_cookie)] == [403, 403, 403, 403]
    assert site.app.review_queue().get(s.id).approvals == ()
    refused = [r for r in site.app.audit.records() if r.action == "console.csrf_refused"]
    assert len(refused) == 4 and {r.actor for r in refused} == {f"console:{APPROVER}"}


def test_the_principal_is_never_taken_from_the_form(site: ConsoleSite) -> None:
    s = site.suggest(site.incident())
    with site.client("approver") as http:
        token = csrf_token(http.get(f"/suggestions/{s.id}").text)
        http.post(f"/suggestions/{s.id}/approve", data={"csrf_token": token, "justification": "ok",
                                                          "approver": "console:someone-else", "actor": "x"},
                  headers={"X-Remote-User": APPROVER_2})
    assert [a.approver for a in site.app.review_queue().get(s.id).approvals] == [f"console:{APPROVER}"]


# ------------------------------------------------------- the CLI's bypass attempts, through the console

def test_parameters_changed_in_the_store_are_refused_as_tampered(site: ConsoleSite) -> None:
    """Someone with write access to the database swaps the address: the queue's hash binding refuses it."""
    s = site.suggest(site.incident())
    with site.store.begin() as conn:
        conn.exec_driver_sql("UPDATE suggestions SET params_json = ? WHERE id = ?",
                             ('{"address": "10.0.0.53", "firewall": "fw1", "minutes": 60}', s.id))
    with site.client("approver") as http:
        page = _decide(http, s.id)
        if page.status_code == 303:
            page = http.get(page.headers["location"])
    assert _refusal(page)[0] == "ParametersTampered"
    assert site.app.review_queue().get(s.id).state == "pending"


def test_an_approval_counts_once_and_a_decided_suggestion_takes_no_more(site: ConsoleSite) -> None:
    """Replaying the approve POST (same person, fresh token) does not approve twice; once approved, no more approvals."""
    s = site.suggest(site.incident())
    with site.client("approver") as http:
        assert _decide(http, s.id).status_code == 303
        again = _decide(http, s.id)
        if again.status_code == 303:
            again = http.get(again.headers["location"])
    with site.client("approver-2") as http:
        late = _decide(http, s.id, "approve", "me too")
        if late.status_code == 303:
            late = http.get(late.headers["location"])
    done = site.app.review_queue().get(s.id)
    assert done.state == "approved" and len(done.approvals) == 1
    assert _refusal(again)[0] is not None and _refusal(late)[0] is not None
