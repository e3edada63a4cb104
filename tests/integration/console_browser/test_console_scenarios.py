"""The web console in Debian's Chromium against the real daemon: people log in with client certificates and decide.

One `watchstander run` per module (a subprocess with `[console]` enabled, mutual TLS with the test
PKI, syslog over UDP), its store seeded beforehand through the App's own services; one headless
Chromium whose contexts present each person's certificate. What the pages show is checked against
the store the daemon writes. Screenshots of the main pages land in the screenshot folder.
"""

from __future__ import annotations

import io
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.browser import PROXY_ERROR, ConsoleBrowser, Tab, chromium_path, handshake_refusal
from support.console_site import ConsoleSite, Seeded, brute_force_lines, running, seed, write_site
from support.pki import ConsolePki, Person

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(90)]

LIVE_ATTACKER = "192.0.2.66"
HOSTILE_ATTACKER = "192.0.2.99"
HOSTILE_USER = "<script>window.__pwned=1</script>"
ANSI = "\x1b[31m"
BIDI = "\u202e"


@pytest.fixture(scope="module")
def site(pki: ConsolePki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsoleSite, Seeded]]:
    """The seeded site with its daemon running (started before the browser: seeding must not share its loop)."""
    chromium_path()  # skip before starting a daemon nobody will look at
    made = write_site(tmp_path_factory.mktemp("site"), pki)
    seeded = seed(made)
    with running(made) as started:
        yield started, seeded


@pytest.fixture(scope="module")
def ui(site: tuple[ConsoleSite, Seeded], browser: ConsoleBrowser) -> Iterator[UI]:
    """The site, what was seeded and the browser, together."""
    yield UI(site[0], site[1], browser)


class UI:
    """Helpers over one site and one browser."""

    def __init__(self, site: ConsoleSite, seeded: Seeded, browser: ConsoleBrowser) -> None:
        self.site = site
        self.seeded = seeded
        self.browser = browser

    def open(self, person: Person | None, path: str) -> Tab:
        """A new tab for `person` at `path` (the response must arrive; its status is not checked here)."""
        tab = self.browser.tab(self.site.origin, person)
        tab.page.goto(self.site.origin + path)
        return tab

    def suggestion(self, suggestion_id: int) -> tuple[str, list[str]]:
        """(state, approvers) of a suggestion as the daemon stored it."""
        con = sqlite3.connect(self.site.db)
        try:
            (state,) = con.execute("SELECT state FROM suggestions WHERE id = ?", (suggestion_id,)).fetchone()
            approvers = [r[0] for r in con.execute(
                "SELECT approver FROM suggestion_approvals WHERE suggestion_id = ? ORDER BY approver",
                (suggestion_id,))]
            return str(state), approvers
        finally:
            con.close()

    def audit(self, action: str) -> list[tuple[str, str, str]]:
        """(actor, subject, data) of every audit record with `action`, in order."""
        con = sqlite3.connect(self.site.db)
        try:
            return [(r[0], r[1], r[2]) for r in con.execute(
                "SELECT actor, subject, data FROM audit_log WHERE action = ? ORDER BY seq", (action,))]
        finally:
            con.close()

    def decide(self, tab: Tab, suggestion_id: int, justification: str) -> int:
        """Open the suggestion, write why and press Approve; the HTTP status of the POST."""
        page = tab.page
        page.goto(f"{self.site.origin}/suggestions/{suggestion_id}")
        page.get_by_test_id("approve-justification").fill(justification)
        return submit(page, "btn-approve")


def submit(page: Page, button: str) -> int:
    """Click a form's submit button and wait for the page it leads to; the HTTP status of the POST itself."""
    with page.expect_navigation() as navigation:
        page.get_by_test_id(button).click()
    request = navigation.value.request if navigation.value is not None else None
    assert request is not None
    while request.redirected_from is not None:  # a 303 after the POST: report the POST's own status
        request = request.redirected_from
    answer = request.response()
    assert answer is not None and request.method == "POST"
    return answer.status


def _text(tab: Tab, testid: str) -> str:
    return " ".join(tab.page.get_by_test_id(testid).inner_text().split())


# ---------------------------------------------------------------------- incidents, live

def test_an_operator_sees_a_new_incident_appear_without_reloading(ui: UI) -> None:
    """Brute-force lines arrive over UDP; the open list gains the incident through SSE, with no navigation."""
    from playwright.sync_api import expect

    tab = ui.open(ui.site.pki.operator, "/incidents")
    page = tab.page
    expect(page.get_by_test_id("whoami")).to_have_attribute("data-principal", ui.site.principals["operator"])
    expect(page.get_by_test_id("incident-table")).to_contain_text("SSH password guessing against bastion")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.evaluate("window.__stillTheSamePage = true")  # a reload would lose it
    assert LIVE_ATTACKER not in page.get_by_test_id("incident-table").inner_text()

    ui.site.send_syslog(brute_force_lines(LIVE_ATTACKER))
    row = page.get_by_test_id("incident-row").filter(has_text=LIVE_ATTACKER)
    expect(row).to_be_visible(timeout=30_000)
    assert page.evaluate("window.__stillTheSamePage") is True
    assert navigations == []
    ui.browser.shot(page, "console-incidents-live")
    assert not tab.errors, tab.errors


def test_an_operator_opens_the_incident_and_sees_the_exact_commands(ui: UI) -> None:
    """Incident list → incident → its suggestion: every command the queue will run, as the runner renders it."""
    tab = ui.open(ui.site.pki.operator, "/incidents")
    page = tab.page
    page.locator(f"#incident-{ui.seeded.incident}").get_by_test_id("incident-link").click()
    page.wait_for_url(re.compile(rf"/incidents/{ui.seeded.incident}$"))
    assert "SSH password guessing against bastion" in page.inner_text("body")
    ui.browser.shot(page, "console-incident")
    page.locator(f"a[href='/suggestions/{ui.seeded.medium}']").first.click()
    page.wait_for_url(re.compile(rf"/suggestions/{ui.seeded.medium}$"))
    shown = [" ".join(c.split()) for c in page.get_by_test_id("will-run-command").all_inner_texts()]
    assert ui.seeded.medium_commands and all(" ".join(c.split()) in shown for c in ui.seeded.medium_commands), shown
    assert page.get_by_test_id("form-approve").count() == 0  # an operator is not an approver
    ui.browser.shot(page, "console-suggestion")
    assert not tab.errors, tab.errors


# ---------------------------------------------------------------------- suggestions: the review queue's rules

def test_an_approver_approves_with_a_justification(ui: UI) -> None:
    """One approval suffices for a medium-risk block; the page and the store name the certificate's principal."""
    tab = ui.open(ui.site.pki.approver, "/suggestions")
    assert tab.page.locator(f"a[href='/suggestions/{ui.seeded.medium}']").count() >= 1
    ui.browser.shot(tab.page, "console-suggestions")
    status = ui.decide(tab, ui.seeded.medium, "confirmed with the bastion's owner: block it")
    assert status == 303
    assert tab.page.get_by_test_id("suggestion-state").inner_text() == "approved"
    assert "confirmed with the bastion's owner" in _text(tab, "approvals")
    assert ui.suggestion(ui.seeded.medium) == ("approved", [ui.site.actor("approver")])
    ui.browser.shot(tab.page, "console-suggestion-approved")


def test_a_high_risk_suggestion_waits_for_a_second_approver(ui: UI) -> None:
    """switch-port-shutdown needs two people: one approval leaves it pending, the same person again is refused."""
    first = ui.browser.tab(ui.site.origin, ui.site.pki.approver)
    assert ui.decide(first, ui.seeded.high, "port 7 carries the attacker") == 303
    assert first.page.get_by_test_id("suggestion-state").inner_text() == "pending"
    assert "1/2" in _text(first, "suggestion-approvals")
    assert ui.suggestion(ui.seeded.high) == ("pending", [ui.site.actor("approver")])

    assert ui.decide(first, ui.seeded.high, "approving again") == 409
    assert first.page.get_by_test_id("refusal").get_attribute("data-refusal-type") == "DuplicateApprover"

    second = ui.browser.tab(ui.site.origin, ui.site.pki.approver2)
    assert ui.decide(second, ui.seeded.high, "agreed: shut port 7") == 303
    assert second.page.get_by_test_id("suggestion-state").inner_text() == "approved"
    assert ui.suggestion(ui.seeded.high) == ("approved", sorted([ui.site.actor("approver"),
                                                                 ui.site.actor("approver2")]))


def test_the_requester_cannot_approve_their_own(ui: UI) -> None:
    """The approver edited this suggestion, so they requested it: the queue refuses and the page says so."""
    tab = ui.browser.tab(ui.site.origin, ui.site.pki.approver)
    assert ui.decide(tab, ui.seeded.own, "my own edit") == 409
    refusal = tab.page.get_by_test_id("refusal")
    assert refusal.get_attribute("data-refusal-type") == "RequesterCannotApprove"
    assert ui.suggestion(ui.seeded.own) == ("pending", [])
    ui.browser.shot(tab.page, "console-refusal-own-request")


def test_an_expired_suggestion_cannot_be_approved(ui: UI) -> None:
    """Past its TTL: the page offers no decision, and a crafted POST with a valid token is refused by the queue."""
    tab = ui.open(ui.site.pki.approver, f"/suggestions/{ui.seeded.expired}")
    page = tab.page
    assert page.get_by_test_id("suggestion-state").inner_text() == "expired"
    assert page.get_by_test_id("form-approve").count() == 0
    # A token for this session and person, from a page that has a form (the medium one was approved
    # earlier; the reject form of a pending suggestion carries the same token).
    page.goto(f"{ui.site.origin}/suggestions/{ui.seeded.own}")
    token = page.get_by_test_id("csrf-token").first.get_attribute("value")
    assert token
    response = page.request.post(f"{ui.site.origin}/suggestions/{ui.seeded.expired}/approve",
                                 form={"csrf_token": token, "justification": "too late"}, max_redirects=0)
    assert response.status == 409, response.text()[:500]
    assert 'data-refusal-type="IllegalTransition"' in response.text() or "expired" in response.text()
    assert ui.suggestion(ui.seeded.expired) == ("expired", [])


# ---------------------------------------------------------------------- who may come in

def test_an_unmapped_certificate_gets_403_and_an_audit_record(ui: UI) -> None:
    """A valid certificate from the site's CA whose UPN, e-mail and CN are not in [console.roles]."""
    tab = ui.browser.tab(ui.site.origin, ui.site.pki.unmapped)
    response = tab.page.goto(ui.site.origin + "/incidents")
    assert response is not None and response.status == 403
    assert "not in [console.roles]" in _text(tab, "forbidden-reason")
    assert tab.page.get_by_test_id("incident-table").count() == 0
    ui.browser.shot(tab.page, "console-forbidden-unmapped")
    refused = ui.audit("console.refused")
    assert any(ui.site.pki.unmapped.upn in data for _, _, data in refused), refused


def test_revoked_and_foreign_certificates_and_none_are_refused_in_the_handshake(ui: UI) -> None:
    """The CRL and the CA bundle are the listener's: no page is served at all."""
    for person in (ui.site.pki.revoked, ui.site.pki.foreign, None):
        tab = ui.browser.tab(ui.site.origin, person)
        reason = handshake_refusal(tab.page, ui.site.origin + "/incidents")
        assert reason is not None and ("net::ERR_" in reason or PROXY_ERROR in reason), (person, reason)


def test_a_form_posted_without_its_csrf_token_is_refused(ui: UI) -> None:
    """The approve form with its hidden token removed: 403, audited, and the suggestion unchanged."""
    tab = ui.browser.tab(ui.site.origin, ui.site.pki.approver2)
    page = tab.page
    page.goto(f"{ui.site.origin}/suggestions/{ui.seeded.own}")
    page.get_by_test_id("approve-justification").fill("no token")
    page.evaluate("document.querySelectorAll('#form-approve input[name=csrf_token]').forEach(e => e.remove())")
    assert submit(page, "btn-approve") == 403
    assert "security token" in _text(tab, "forbidden-reason")
    assert ui.suggestion(ui.seeded.own) == ("pending", [])
    assert any(actor == ui.site.actor("approver2") for actor, _, _ in ui.audit("console.csrf_refused"))


# ---------------------------------------------------------------------- hostile telemetry

def test_hostile_telemetry_renders_as_inert_text(ui: UI) -> None:
    """Markup, a script tag, ANSI escapes and a bidi override in a user name sent over syslog: shown, never run."""
    from playwright.sync_api import expect

    user = f"{HOSTILE_USER}{ANSI}adm{BIDI}in"
    lines = brute_force_lines(HOSTILE_ATTACKER, user=f"invalid user {user}")
    lines.append(brute_force_lines(HOSTILE_ATTACKER, n=1)[0].replace(b"Failed password for root",
                                                                     f"Accepted password for {user}".encode()))
    ui.site.send_syslog(lines)
    tab = ui.browser.tab(ui.site.origin, ui.site.pki.operator)
    page = tab.page
    response = page.goto(ui.site.origin + "/incidents")
    assert response is not None and "script-src 'self'" in response.headers.get("content-security-policy", "")
    row = page.get_by_test_id("incident-row").filter(has_text=HOSTILE_ATTACKER)
    expect(row).to_be_visible(timeout=30_000)
    row.get_by_test_id("incident-link").click()
    page.wait_for_load_state()
    body = page.inner_text("body")
    assert HOSTILE_USER in body, body[:2000]  # the markup is visible as text
    assert ANSI not in body and BIDI not in body  # invisible characters are shown escaped
    assert "\\x1b" in body and "\\u202e" in body
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
    assert not tab.dialogs and not tab.errors, (tab.dialogs, tab.errors)
    ui.browser.shot(page, "console-incident-hostile")


# ---------------------------------------------------------------------- compliance

def test_a_compliance_officer_updates_an_obligation_and_downloads_the_pdf(ui: UI, tmp_path: Path) -> None:
    """Tracker → an EO 14409 obligation → status, owner and note saved (audited) → the PDF names EO 14409."""
    from pypdf import PdfReader

    tab = ui.open(ui.site.pki.compliance, "/compliance")
    page = tab.page
    ui.browser.shot(page, "console-compliance")
    rows = page.get_by_test_id("obligation-row")
    eo_row = rows.filter(has_text=re.compile(r"14409")).first
    (eo_row if eo_row.count() else rows.first).get_by_test_id("obligation-link").click()
    page.wait_for_url(re.compile(r"/compliance/obligations/"))
    page.get_by_test_id("obligation-input-status").select_option("in_progress")
    page.get_by_test_id("obligation-input-owner").fill("carol.comp")
    page.get_by_test_id("obligation-input-note").fill("drafted the POA&M; review on Friday")
    assert submit(page, "btn-obligation-update") == 303, page.inner_text("body")[:1000]
    body = page.inner_text("body")
    assert "carol.comp" in body and "drafted the POA&M" in body and "In progress" in body
    ui.browser.shot(page, "console-obligation-updated")

    page.goto(ui.site.origin + "/compliance")
    with page.expect_download() as download:
        page.get_by_test_id("export-pdf").click()
    saved = tmp_path / "report.pdf"
    download.value.save_as(saved)
    raw = saved.read_bytes()
    assert raw.startswith(b"%PDF-")
    text = " ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(raw)).pages)
    assert re.search(r"EO\s*14409", text), text[:1000]
    assert any(actor == ui.site.actor("compliance") for actor, _, _ in ui.audit("console.export"))


# ---------------------------------------------------------------------- revocation (last: it changes the CRL)

def test_a_certificate_revoked_later_is_refused_after_sighup(ui: UI) -> None:
    """The second approver's certificate goes on a new CRL; SIGHUP reloads it; their next connection is refused."""
    before = ui.open(ui.site.pki.approver2, "/suggestions")
    assert before.page.get_by_test_id("whoami").get_attribute("data-principal") == ui.site.principals["approver2"]
    ui.site.pki.authority.revoke(ui.site.pki.approver2)
    ui.site.pki.authority.write_crl(ui.site.pki.crl)
    assert ui.site.process is not None
    ui.site.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while True:
        tab = ui.browser.tab(ui.site.origin, ui.site.pki.approver2)
        reason = handshake_refusal(tab.page, ui.site.origin + "/suggestions")
        if reason is not None:
            assert "ERR_CONNECTION_REFUSED" not in reason, "the console stopped listening"
            break  # refused in the handshake
        assert time.monotonic() < deadline, f"still served after SIGHUP:\n{ui.site.log_text()[-2000:]}"
        tab.page.context.close()
        time.sleep(0.5)
    assert ui.site.process.poll() is None
    still = ui.open(ui.site.pki.approver, "/suggestions")  # the others are unaffected
    assert still.page.get_by_test_id("whoami").get_attribute("data-principal") == ui.site.principals["approver"]
