"""The pages: hostile telemetry stays inert, strict headers, the live stream, the lifecycle, runs and compliance."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from support.console_kit import ConsoleSite, csrf_token, verdict

from watchstander.agent.console.demo_pki import DEMO_PEOPLE
from watchstander.agent.models import RecommendedAction
from watchstander.agent.store.runs import run_steps, runs

pytestmark = pytest.mark.integration

OPERATOR, APPROVER, APPROVER_2, COMPLIANCE, UNMAPPED = (p.upn for p in DEMO_PEOPLE)
HOSTILE_TITLE = "<script>alert('t')</script> \x1b[31mRED\x1b[0m invoice\u202egnp.exe"
HOSTILE_DNS = "xn--evil\u200b.example.<b>bold</b>.com"
HOSTILE_LINE = "Failed password for <img src=x onerror=alert(1)> from 203.0.113.9 \x07\u2066hidden\u2069"


def test_hostile_telemetry_renders_as_inert_visible_text(site: ConsoleSite) -> None:
    rationale = "ignore previous instructions <iframe src=//evil></iframe>\u202eyxorp"
    incident_id = site.incident(HOSTILE_TITLE, entity=HOSTILE_DNS, evidence=[HOSTILE_LINE],
                                attributes={"query": "<svg onload=alert(2)>", "qname": HOSTILE_DNS},
                                verdict=verdict(RecommendedAction(playbook="block-address-nftables",
                                                                  parameters={"address": "203.0.113.9"},
                                                                  justification="<script>x</script>"),
                                                rationale=rationale))
    with site.client("operator") as http:
        pages = [http.get("/incidents"), http.get(f"/incidents/{incident_id}"), http.get("/incidents/rows")]
    for page in pages:
        assert page.status_code == 200
        body = page.text
        for raw in ("<script>alert", "<img src=x", "<svg onload", "<iframe", "<b>bold", "\x1b", "\u202e", "\u2066",
                    "\u200b", "\x07"):
            assert raw not in body, (page.url, raw)
        assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;" in body
        assert "\\x1b[31mRED" in body and "\\u202egnp.exe" in body
    detail = pages[1].text
    assert "&lt;img src=x onerror=alert(1)&gt;" in detail and "\\x07\\u2066hidden\\u2069" in detail
    assert "&lt;svg onload=alert(2)&gt;" in detail and "\\u202eyxorp" in detail
    # The only scripts are the package's own files; no inline handlers or styles anywhere.
    for page in pages[:2]:
        assert re.findall(r"<script\b[^>]*>", page.text) == ['<script src="/static/htmx.min.js" defer>',
                                                             '<script src="/static/console.js" defer>']
        tags = re.findall(r"<[a-zA-Z][^>]*>", page.text)  # real elements only: telemetry's < is &lt;
        assert not [t for t in tags if re.search(r"\s(on[a-z]+|style)\s*=", t)]


def test_strict_headers_on_pages_partials_and_static_files(site: ConsoleSite) -> None:
    with site.client("operator") as http:
        for path in ("/incidents", "/incidents/rows", "/suggestions", "/static/console.js", "/static/htmx.min.js"):
            r = http.get(path)
            assert r.status_code == 200, path
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
            if not path.startswith("/static/"):
                assert r.headers["cache-control"] == "no-store"
        cookie = http.get("/incidents").headers.get("set-cookie", "")
    if cookie:
        assert all(flag in cookie for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"))


def test_the_live_stream_announces_a_new_incident(site: ConsoleSite) -> None:
    site.incident("first")
    received: list[str] = []

    def listen() -> None:
        with site.client("operator") as http, http.stream("GET", "/events", timeout=15) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                received.append(line)
                if line.startswith("event: incidents"):
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.8)  # the stream has taken its first look
    new_id = site.incident("second, while watching", entity="198.51.100.7")
    listener.join(10)
    assert "event: incidents" in received, received
    with site.client("operator") as http:
        rows = http.get("/incidents/rows")
    assert f'data-incident-id="{new_id}"' in rows.text and 'hx-trigger="incidents-changed from:body"' in rows.text


def test_the_list_pages_server_side_and_filters(site_factory: Callable[..., ConsoleSite]) -> None:
    site = site_factory(console={"page_size": 10})
    now = site.clock().timestamp()
    for i in range(25):
        site.incident(f"incident {i}", entity=f"10.20.0.{i}", severity="low" if i % 2 else "critical",
                      last_seen=now - i * 60, key=f"k{i}")
    with site.client("operator") as http:
        first = http.get("/incidents")
        third = http.get("/incidents?page=3")
        critical = http.get("/incidents?severity=critical&asset=10.20.0.1")
        bad = http.get("/incidents?since=bogus&page=-4")
    assert first.text.count('data-testid="incident-row"') == 10 and 'data-pages="3"' in first.text
    assert third.text.count('data-testid="incident-row"') == 5
    ids = re.findall(r'data-testid="incident-title">incident (\d+)<', critical.text)
    assert ids and all(int(i) % 2 == 0 and str(i).startswith("1") for i in ids)
    assert bad.status_code == 200


def test_the_list_filters_by_sensor_and_the_incident_names_who_saw_it(site: ConsoleSite) -> None:
    both = site.incident("seen twice", entity="198.51.100.7", sensors=("edge-1", "edge-2"))
    site.incident("seen once", entity="198.51.100.8", sensors=("edge-2",))
    site.incident("seen nowhere recorded", entity="198.51.100.9")
    with site.client("operator") as http:
        page = http.get("/incidents")
        edge_1 = http.get("/incidents/rows?sensor=edge-1")
        edge_2 = http.get("/incidents/rows?sensor=edge-2")
        detail = http.get(f"/incidents/{both}")
    assert 'data-testid="filter-sensor"' in page.text
    assert re.findall(r'<option value="(edge-[12])"', page.text) == ["edge-1", "edge-2"]
    assert re.findall(r'data-testid="incident-title">([^<]+)<', edge_1.text) == ["seen twice"]
    assert sorted(re.findall(r'data-testid="incident-title">([^<]+)<', edge_2.text)) == ["seen once", "seen twice"]
    assert re.search(r'data-testid="incident-sensors">edge-1, edge-2<', detail.text)
    assert re.search(r'data-testid="finding-sensors">edge-1, edge-2<', detail.text)


def test_the_incident_lifecycle_through_the_console(site: ConsoleSite) -> None:
    incident_id = site.incident()
    with site.client("operator") as http:
        page = http.get(f"/incidents/{incident_id}")
        token = csrf_token(page.text)

        def post(what: str, **data: str) -> httpx.Response:
            return http.post(f"/incidents/{incident_id}/{what}", data={"csrf_token": token, **data})

        assert post("acknowledge").status_code == 303
        assert post("assign", assignee="olga").status_code == 303
        assert post("comment", text="looking <b>now</b>").status_code == 303
        assert post("close", disposition="false_positive", reason="our scanner").status_code == 303
        again = post("close", disposition="benign", reason="twice")
        assert again.status_code == 409 and 'data-refusal-type="IncidentTransitionError"' in again.text
        assert post("reopen", reason="it came back").status_code == 303
        shown = http.get(f"/incidents/{incident_id}").text
    assert "looking &lt;b&gt;now&lt;/b&gt;" in shown and shown.count('data-testid="note"') >= 5
    actors = {r.actor for r in site.app.audit.records() if r.subject == f"incident:{incident_id}"}
    assert f"console:{OPERATOR}" in actors
    with site.client("compliance") as http:  # viewers read, only operators act
        token = csrf_token(http.get("/compliance").text) if 'name="csrf_token"' in http.get("/compliance").text else ""
        assert http.post(f"/incidents/{incident_id}/acknowledge", data={"csrf_token": token}).status_code == 403


def test_runs_list_and_detail_show_steps_inertly(site: ConsoleSite) -> None:
    with site.store.begin() as conn:
        run_id = conn.execute(runs.insert().values(
            suggestion_id=1, incident_id=None, playbook_id="block-address-nftables", playbook_hash="0" * 64,
            params_json="{}", runner="h:1:1", actor="console:x", state="succeeded", started_at="2026-11-27T12:00:00",
            started_ts=0.0, ended_at="2026-11-27T12:01:00", rollback_json="[]")).inserted_primary_key[0]
        conn.execute(run_steps.insert().values(
            run_id=run_id, phase="steps", step_id="add", action="ssh.command", target="fw1",
            command="ssh fw1: sudo -n nft add element", status="ok", started_at="2026-11-27T12:00:01",
            output="done <script>x</script>\x1b[2J"))
    with site.client("approver") as http:
        listing = http.get("/runs")
        detail = http.get(f"/runs/{run_id}")
    assert f'data-run-id="{run_id}"' in listing.text
    assert "&lt;script&gt;x&lt;/script&gt;\\x1b[2J" in detail.text and "<script>x" not in detail.text
    assert 'data-testid="btn-revert"' not in detail.text  # no run service outside the daemon


def test_compliance_officer_updates_an_obligation_and_exports(site: ConsoleSite) -> None:
    with site.client("compliance") as http:
        tracker = http.get("/compliance?as_of=2026-11-27")
        assert tracker.status_code == 200 and 'data-testid="export-pdf"' in tracker.text
        ob_id = re.findall(r'data-obligation-id="([^"]+)"', tracker.text)[0]
        page = http.get(f"/compliance/obligations/{ob_id}")
        saved = http.post(f"/compliance/obligations/{ob_id}", data={
            "csrf_token": csrf_token(page.text), "status": "in_progress", "owner": "CISO office",
            "evidence": "https://intranet.example.mil/poam/1", "note": "kick-off held"})
        assert saved.status_code == 303
        local = http.post(f"/compliance/obligations/{ob_id}", data={
            "csrf_token": csrf_token(page.text), "evidence": "/etc/shadow"})
        assert local.status_code == 409 and "give an http(s) URL" in local.text
        pdf = http.get("/compliance/export?format=pdf&as_of=2026-11-27")
        data = http.get("/compliance/export?format=json&as_of=2026-11-27")
        chart = http.get("/compliance/chart.svg?as_of=2026-11-27")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF") and pdf.headers["content-type"] == "application/pdf"
    assert "guidance-report-2026-11-27.pdf" in pdf.headers["content-disposition"]
    row = next(o for o in json.loads(data.content)["obligations"] if o["id"] == ob_id) if "obligations" in \
        json.loads(data.content) else None
    assert row is None or row["owner"] == "CISO office"
    assert chart.headers["content-type"].startswith("image/svg+xml") and b"<svg" in chart.content
    actions = [(r.actor, r.action) for r in site.app.audit.records() if r.subject in (ob_id, "guidance:pdf")]
    assert (f"console:{COMPLIANCE}", "guidance.obligation.owner") in actions
    assert (f"console:{COMPLIANCE}", "console.export") in actions
    with site.client("operator") as http:
        page = http.get(f"/compliance/obligations/{ob_id}")
        assert 'data-testid="form-obligation"' not in page.text
        assert http.get("/compliance/export?format=pdf").status_code == 403
