"""The incident lifecycle over a real SQLite file: transitions, notes, typed refusals, audit, races, recurrence."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.incidents import BASE, finding, make_app, write_incident

from watchstander.agent.app.incident_lifecycle import MAX_TEXT
from watchstander.agent.app.incident_query import query_from_params
from watchstander.agent.app.wiring import App
from watchstander.agent.clock import system_clock
from watchstander.agent.config.load import validate_config
from watchstander.agent.errors import (
    Exit,
    IncidentInputError,
    IncidentNotFound,
    IncidentTransitionError,
    NotFoundError,
)
from watchstander.agent.store.incidents import DETECTION
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration
OLGA = "uid:1001:olga"


def audit_rows(app: App, prefix: str = "incident.") -> list[tuple[str, str, str, dict[str, object]]]:
    """(actor, action, subject, data) of the incident audit records, in order."""
    return [(r.actor, r.action, r.subject, r.data) for r in app.audit.records() if r.action.startswith(prefix)]


def test_the_whole_lifecycle_is_noted_audited_and_verifies(app: App) -> None:
    iid = write_incident(app, "fp-1", [finding()])
    life = app.incident_lifecycle()
    assert life.state(iid).status == "open"
    assert life.acknowledge(iid, OLGA).status == "acknowledged"
    assert life.assign(iid, OLGA, "uid:1002:abe").assignee == "uid:1002:abe"
    note = life.comment(iid, OLGA, "pcap shows a lab scanner\nsee ticket 42")
    closed = life.close(iid, OLGA, "false_positive", "the red team's scanner")
    assert (closed.status, closed.disposition, closed.closed_by) == ("closed", "false_positive", OLGA)
    assert closed.closed_at is not None and closed.assignee == "uid:1002:abe"
    assert life.comment(iid, OLGA, "kept for the record").kind == "comment"  # comments stay allowed when closed
    reopened = life.reopen(iid, OLGA, "the scanner was not ours")
    assert (reopened.status, reopened.disposition, reopened.closed_at) == ("open", None, None)

    notes = life.notes(iid)
    assert [n.kind for n in notes] == ["acknowledge", "assign", "comment", "close", "comment", "reopen"]
    assert notes[2] == note and note.text == "pcap shows a lab scanner\nsee ticket 42"
    assert notes[3].text == "closed as false_positive: the red team's scanner" and {n.principal for n in notes} == {OLGA}

    records = audit_rows(app)
    assert [(a, s) for _, a, s, _ in records] == [
        ("incident.transition", f"incident:{iid}"), ("incident.assign", f"incident:{iid}"),
        ("incident.comment", f"incident:{iid}"), ("incident.transition", f"incident:{iid}"),
        ("incident.comment", f"incident:{iid}"), ("incident.transition", f"incident:{iid}")]
    assert records[3][3] == {"from": "acknowledged", "to": "closed", "note": notes[3].id,
                             "disposition": "false_positive", "reason": "the red team's scanner"}
    assert {actor for actor, *_ in records} == {OLGA}
    assert app.audit.verify().ok


def test_refusals_are_typed_with_stable_reasons_and_audited(app: App) -> None:
    iid = write_incident(app, "fp-2", [finding()])
    life = app.incident_lifecycle()

    def refused(call, exc_type, reason, status):  # type: ignore[no-untyped-def]
        with pytest.raises(exc_type) as err:
            call()
        assert (err.value.reason, err.value.exit_status) == (reason, status)
        return err.value

    refused(lambda: life.reopen(iid, OLGA, "why not"), IncidentTransitionError, "not_closed", Exit.ILLEGAL_TRANSITION)
    life.acknowledge(iid, OLGA)
    err = refused(lambda: life.acknowledge(iid, OLGA), IncidentTransitionError, "already_acknowledged", 6)
    assert (err.incident_id, err.state) == (iid, "acknowledged")
    refused(lambda: life.close(iid, OLGA, "probably_fine", "x"), IncidentInputError, "bad_disposition", 4)
    refused(lambda: life.close(iid, OLGA, "benign", "  "), IncidentInputError, "empty_text", 4)
    refused(lambda: life.comment(iid, OLGA, "a" * (MAX_TEXT + 1)), IncidentInputError, "text_too_long", 4)
    refused(lambda: life.comment(iid, OLGA, "look \x1b]8;;http://evil\x07here"), IncidentInputError, "bad_text", 4)
    refused(lambda: life.assign(iid, OLGA, "abe\u202e"), IncidentInputError, "bad_assignee", 4)
    life.close(iid, OLGA, "benign", "backup job")
    for call in (lambda: life.close(iid, OLGA, "benign", "again"), lambda: life.acknowledge(iid, OLGA),
                 lambda: life.assign(iid, OLGA, "abe")):
        refused(call, IncidentTransitionError, "already_closed", 6)
    for missing in (iid + 100, 0, -3, 2**63):
        err = refused(lambda m=missing: life.close(m, OLGA, "benign", "x"), IncidentNotFound, "not_found", 5)
        assert isinstance(err, NotFoundError)
    with pytest.raises(IncidentNotFound):
        life.notes(iid + 100)

    # Each refused transition is on the record; input refusals change nothing and are not.
    refusals = [(a, d["reason"]) for _, a, _, d in audit_rows(app) if a.endswith("_refused")]
    assert refusals == [("incident.reopen_refused", "not_closed"), ("incident.acknowledge_refused",
                        "already_acknowledged"), ("incident.close_refused", "already_closed"),
                        ("incident.acknowledge_refused", "already_closed"), ("incident.assign_refused",
                                                                            "already_closed")]
    assert [n.kind for n in life.notes(iid)] == ["acknowledge", "close"]
    assert app.audit.verify().ok


def test_two_people_closing_at_once_one_wins(tmp_path: Path) -> None:
    first = make_app(tmp_path, system_clock)
    second = make_app(tmp_path, system_clock)  # its own engine and connections on the same file
    try:
        iids = [write_incident(first, f"race-{i}", [finding(attacker=f"198.51.100.{i}")]) for i in range(5)]
        for iid in iids:
            barrier = threading.Barrier(2)
            outcomes: list[str] = []

            def close(app: App, who: str, disposition: str, iid: int = iid, barrier: threading.Barrier = barrier,
                      outcomes: list[str] = outcomes) -> None:
                life = app.incident_lifecycle()
                barrier.wait(5)
                try:
                    life.close(iid, who, disposition, f"{who} says {disposition}")
                    outcomes.append(f"won:{who}")
                except IncidentTransitionError as exc:
                    outcomes.append(f"lost:{exc.reason}")

            threads = [threading.Thread(target=close, args=(first, "uid:1:a", "benign")),
                       threading.Thread(target=close, args=(second, "uid:2:b", "true_positive"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert sorted(o.split(":")[0] for o in outcomes) == ["lost", "won"], outcomes
            assert "lost:already_closed" in outcomes
            state = first.incident_lifecycle().state(iid)
            winner = next(o for o in outcomes if o.startswith("won:")).removeprefix("won:")
            assert state.closed_by == winner
            assert [n.kind for n in first.incident_lifecycle().notes(iid)] == ["close"]
        assert first.audit.verify().ok
        closes = [r for r in audit_rows(first) if r[1] == "incident.transition"]
        assert len(closes) == len(iids)
    finally:
        for made in (first, second):
            made.close()
            made.store.close()


def test_recurrence_after_close_depends_on_the_disposition(app: App) -> None:
    life = app.incident_lifecycle()
    fp = write_incident(app, "fp-recur", [finding(attacker="203.0.113.1")])
    tp = write_incident(app, "tp-recur", [finding(attacker="203.0.113.2")])
    life.close(fp, OLGA, "false_positive", "vulnerability scanner")
    life.close(tp, OLGA, "true_positive", "blocked at the edge")

    # The same activity again (no newer event): nothing changes.
    write_incident(app, "fp-recur", [finding(attacker="203.0.113.1")])
    write_incident(app, "tp-recur", [finding(attacker="203.0.113.2")])
    assert life.state(fp).activity_after_close == 0 and life.state(tp).status == "closed"

    # Newer activity: the false positive stays closed (counted, noted once); the true positive reopens.
    for n in range(3):
        write_incident(app, "fp-recur", [finding(attacker="203.0.113.1", first=BASE + 600 * (n + 1))])
    write_incident(app, "tp-recur", [finding(attacker="203.0.113.2", first=BASE + 600)])
    fp_state, tp_state = life.state(fp), life.state(tp)
    assert (fp_state.status, fp_state.disposition, fp_state.activity_after_close) == ("closed", "false_positive", 3)
    assert (tp_state.status, tp_state.disposition) == ("open", None)
    fp_notes, tp_notes = life.notes(fp), life.notes(tp)
    assert [(n.kind, n.principal) for n in fp_notes] == [("close", OLGA), ("activity", DETECTION)]
    assert "stays closed as false_positive" in fp_notes[1].text
    assert [(n.kind, n.principal) for n in tp_notes] == [("close", OLGA), ("reopen", DETECTION)]
    assert "reopened (it was closed as true_positive)" in tp_notes[1].text
    auto = [(a, s, d.get("reason")) for actor, a, s, d in audit_rows(app) if actor == DETECTION]
    assert auto == [("incident.activity_after_close", f"incident:{fp}", None),
                    ("incident.transition", f"incident:{tp}", "recurrence")]
    # A reopened incident can be closed again by a person.
    assert life.close(tp, OLGA, "true_positive", "blocked again").status == "closed"
    assert app.audit.verify().ok


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=300))
def test_an_accepted_comment_reads_back_exactly(app: App, text: str) -> None:
    iid = write_incident(app, "fp-prop", [finding()])
    life = app.incident_lifecycle()
    try:
        note = life.comment(iid, OLGA, text)
    except IncidentInputError as exc:
        assert exc.reason in ("empty_text", "bad_text")
        return
    assert life.notes(iid)[-1] == note and note.text == text


def test_a_version_1_store_is_migrated_and_filled_in(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    with con:
        con.executescript("""
            CREATE TABLE schema_versions (component VARCHAR(64) PRIMARY KEY, version INTEGER NOT NULL);
            INSERT INTO schema_versions VALUES ('core', 1);
            CREATE TABLE incidents (id INTEGER PRIMARY KEY AUTOINCREMENT, fingerprint VARCHAR(64) NOT NULL UNIQUE,
              entity VARCHAR(300) NOT NULL, title VARCHAR(500) NOT NULL, severity VARCHAR(16) NOT NULL,
              status VARCHAR(32) NOT NULL, first_seen FLOAT NOT NULL, last_seen FLOAT NOT NULL,
              created_at VARCHAR(40) NOT NULL, updated_at VARCHAR(40) NOT NULL, verdict_json TEXT);
            CREATE TABLE findings (id INTEGER PRIMARY KEY AUTOINCREMENT, key VARCHAR(64) NOT NULL UNIQUE,
              incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE, detector VARCHAR(64) NOT NULL,
              title VARCHAR(500) NOT NULL, severity VARCHAR(16) NOT NULL, entities_json TEXT NOT NULL,
              techniques_json TEXT NOT NULL, first_seen FLOAT NOT NULL, last_seen FLOAT NOT NULL,
              count INTEGER NOT NULL, counts_json TEXT NOT NULL, attributes_json TEXT NOT NULL,
              evidence_json TEXT NOT NULL);
            CREATE TABLE ingest_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at VARCHAR(40) NOT NULL,
              finished_at VARCHAR(40) NOT NULL, actor VARCHAR(200) NOT NULL, summary_json TEXT NOT NULL);
        """)
        con.execute("INSERT INTO incidents VALUES (1, 'f', '203.0.113.7', 'Old scan', 'low', 'open', 1, 2, 'c', 'u', ?)",
                    (json.dumps({"severity": "critical"}),))
        con.execute("INSERT INTO findings VALUES (1, 'k', 1, 'portscan', 't', 'low', ?, '[\"T1046\"]', 1, 2, 3, "
                    "'{}', '{}', '[]')", (json.dumps({"attacker": "203.0.113.7", "victim": "10.9.8.7"}),))
    con.close()
    store = open_store(f"sqlite:///{db}")
    try:
        assert store.versions()["core"] == 5
        migrated = App(validate_config({"store": {"url": f"sqlite:///{db}"}}), store, system_clock)
        page = migrated.incident_store().search(query_from_params({"asset": "10.9.8", "min_severity": "critical"}))
        assert [(r.id, r.severity, r.status, r.detectors, r.techniques) for r in page.rows] == \
            [(1, "critical", "open", ["portscan"], ["T1046"])]
        assert migrated.incident_lifecycle().close(1, OLGA, "benign", "old").status == "closed"
    finally:
        store.close()
