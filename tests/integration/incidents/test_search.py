"""The console's filtered listing over a real SQLite file: every filter, the total, paging and literal wildcards."""

from __future__ import annotations

import pytest
from support.incidents import BASE, finding, write_incident

from watchstander.agent.app.incident_query import query_from_params, search_incidents
from watchstander.agent.app.wiring import App
from watchstander.agent.models import Incident, Provenance, TriageVerdict

pytestmark = pytest.mark.integration


@pytest.fixture
def seeded(app: App) -> dict[str, int]:
    ids = {
        "scan": write_incident(app, "a", [finding("portscan", "203.0.113.50", "10.20.0.10", first=BASE)],
                               title="Vertical port scan of 10.20.0.10", severity="medium"),
        "brute": write_incident(app, "b", [finding("bruteforce", "192.0.2.77", "10.20.0.22", first=BASE + 100,
                                                   techniques=("T1110.001",)),
                                           finding("ids", "192.0.2.77", "10.20.0.22", first=BASE + 150,
                                                   techniques=("T1190",))],
                                title="SSH guessing 100%_done", severity="high"),
        "sweep": write_incident(app, "c", [finding("sweep", "10.20.0.66", "10.20.0.0/24", first=BASE + 200,
                                                   severity="low")], title="ICMP sweep", severity="low"),
    }
    life = app.incident_lifecycle()
    life.assign(ids["brute"], "uid:1:a", "olga")
    life.close(ids["sweep"], "uid:1:a", "benign", "monitoring")
    return ids


def search(app: App, **params: object) -> tuple[list[int], int]:
    page = search_incidents(app.store, app.clock, query_from_params(params))
    return [r.id for r in page.rows], page.total


def test_every_filter(app: App, seeded: dict[str, int]) -> None:
    scan, brute, sweep = seeded["scan"], seeded["brute"], seeded["sweep"]
    assert search(app) == ([sweep, brute, scan], 3)  # newest activity first
    assert search(app, status="closed") == ([sweep], 1)
    assert search(app, status=["open", "acknowledged"]) == ([brute, scan], 2)
    assert search(app, min_severity="medium") == ([brute, scan], 2)
    assert search(app, severity=["low", "high"]) == ([sweep, brute], 2)
    assert search(app, detector="ids") == ([brute], 1)
    assert search(app, detector="port") == ([], 0)  # a detector id matches exactly
    assert search(app, asset="10.20.0.22") == ([brute], 1)  # a victim, not the incident's entity
    assert search(app, asset="10.20.0.") == ([sweep, brute, scan], 3)
    assert search(app, search="PORT SCAN") == ([scan], 1)
    assert search(app, search="192.0.2.77") == ([brute], 1)
    assert search(app, search="100%_") == ([brute], 1)
    assert search(app, search="%") == ([brute], 1)  # wildcards are literal
    assert search(app, search="_") == ([brute], 1)
    assert search(app, assignee="olga") == ([brute], 1)
    assert search(app, seen_after=BASE + 120, seen_before=BASE + 240) == ([brute], 1)
    assert search(app, min_severity="high", status="open", detector="bruteforce") == ([brute], 1)


def test_rows_carry_what_the_console_shows_and_pages_count_all(app: App, seeded: dict[str, int]) -> None:
    page = search_incidents(app.store, app.clock, query_from_params({"limit": 1, "offset": 1}))
    assert page.total == 3 and len(page.rows) == 1
    row = page.rows[0]
    assert row.id == seeded["brute"]
    data = row.as_dict()
    assert data["detectors"] == ["bruteforce", "ids"] and data["attack_techniques"] == ["T1110.001", "T1190"]
    assert data["entities"] == {"attacker": ["192.0.2.77"], "victim": ["10.20.0.22"]}
    assert (data["status"], data["assignee"], data["disposition"], data["findings"]) == ("open", "olga", None, 2)
    assert data["first_seen"].startswith("2026-11-") and data["last_seen"] > data["first_seen"]
    closed = search_incidents(app.store, app.clock, query_from_params({"status": "closed"})).rows[0]
    assert (closed.status, closed.disposition) == ("closed", "benign")
    assert search(app, offset=3) == ([], 3)


def test_severity_follows_the_verdict(app: App, seeded: dict[str, int]) -> None:
    repo = app.incident_store()
    inc = repo.get(seeded["scan"])
    assert isinstance(inc, Incident)
    inc.verdict = TriageVerdict(severity="critical", confidence=0.9, disposition="true_positive", summary="s",
                                rationale="r", provenance=Provenance(analyst="baseline", analyst_version="t"))
    with app.store.begin() as conn:
        repo.set_verdict(conn, inc)
    assert search(app, min_severity="critical") == ([seeded["scan"]], 1)
    row = search_incidents(app.store, app.clock, query_from_params({"min_severity": "critical"})).rows[0]
    assert (row.severity, row.detector_severity) == ("critical", "medium")
    # A detection update does not lower what the verdict said.
    write_incident(app, "a", [finding("portscan", "203.0.113.50", "10.20.0.10", first=BASE)], severity="medium")
    assert search(app, min_severity="critical") == ([seeded["scan"]], 1)
