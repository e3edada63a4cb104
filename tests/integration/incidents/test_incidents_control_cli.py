"""incidents.* over the daemon's real control socket and through the real CLI: roles, actors, exit statuses."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from support.incidents import finding, write_incident

from watchstander.agent.app.wiring import App
from watchstander.agent.cli.main import main
from watchstander.agent.control.client import ControlClient
from watchstander.agent.control.errors import InvalidParams, PermissionDenied, RemoteError
from watchstander.agent.control.identity import Identity
from watchstander.agent.control.incident_methods import INCIDENT_METHODS

from .conftest import OLGA, VERA, Site

pytestmark = pytest.mark.integration


def test_roles_are_declared_once() -> None:
    assert INCIDENT_METHODS == {"incidents.ack": "operator", "incidents.assign": "operator",
                                "incidents.comment": "operator", "incidents.close": "operator",
                                "incidents.reopen": "operator", "incidents.notes": "viewer"}


def test_the_socket_acts_as_the_caller_with_typed_refusals(site: Site, daemon: Callable[[], App]) -> None:
    app = daemon()
    iid = write_incident(app, "s-1", [finding()])
    client = ControlClient(site.socket)
    site.caller = VERA
    for method, params in (("incidents.ack", {"id": iid}), ("incidents.comment", {"id": iid, "text": "hi"}),
                           ("incidents.close", {"id": iid, "disposition": "benign", "reason": "x"})):
        with pytest.raises(PermissionDenied):
            client.call(method, params)
    assert client.call("incidents.notes", {"id": iid}) == {"notes": [], "incident": {
        "id": iid, "status": "open", "assignee": None, "disposition": None, "closed_at": None, "closed_by": None,
        "status_changed_at": None, "activity_after_close": 0}}
    page = client.call("incidents.search", {"status": "open", "limit": 10})
    assert page["total"] == 1 and page["incidents"][0]["id"] == iid

    site.caller = OLGA
    assert client.call("incidents.ack", {"id": iid})["incident"]["status"] == "acknowledged"
    assert client.call("incidents.assign", {"id": iid, "assignee": "olga"})["incident"]["assignee"] == "olga"
    assert client.call("incidents.assign", {"id": iid, "assignee": None})["incident"]["assignee"] is None
    note = client.call("incidents.comment", {"id": iid, "text": "looking"})["note"]
    assert (note["principal"], note["kind"], note["text"]) == ("uid:1001:olga", "comment", "looking")
    closed = client.call("incidents.close", {"id": iid, "disposition": "true_positive", "reason": "confirmed"})
    assert closed["incident"]["closed_by"] == "uid:1001:olga"
    with pytest.raises(RemoteError) as err:
        client.call("incidents.close", {"id": iid, "disposition": "benign", "reason": "again"})
    assert (err.value.code, err.value.exit_status, err.value.details["reason"], err.value.details["incident_id"]) == \
        ("incident_transition", 6, "already_closed", iid)
    with pytest.raises(RemoteError) as err:
        client.call("incidents.reopen", {"id": iid + 50, "reason": "x"})
    assert (err.value.code, err.value.exit_status, err.value.details["reason"]) == ("incident_not_found", 5, "not_found")
    with pytest.raises(RemoteError) as err:
        client.call("incidents.reopen", {"id": iid, "reason": "\u202eevil"})
    assert (err.value.code, err.value.exit_status, err.value.details["reason"]) == ("incident_input", 4, "bad_text")
    for bad in ({"id": "1"}, {"id": True}, {"id": iid, "assignee": 5}):
        with pytest.raises(InvalidParams):
            client.call("incidents.assign", bad)
    with pytest.raises(InvalidParams):
        client.call("incidents.search", {"status": "gone"})
    assert {r.actor for r in app.audit.records() if r.action.startswith("incident.")} == {"uid:1001:olga"}


def test_the_cli_over_the_daemon_and_in_process(site: Site, daemon: Callable[[], App],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    app = daemon()
    scan = write_incident(app, "c-1", [finding("portscan", "203.0.113.50")], title="Port scan")
    brute = write_incident(app, "c-2", [finding("bruteforce", "192.0.2.77", first=2e9)], title="SSH guessing")
    capsys.readouterr()  # the daemon's own start-up lines (store migration), logged if a handler is set
    assert site.cli(capsys, "ack", str(scan)) == (0, f"incident {scan} is acknowledged\n", "")
    status, out, _ = site.cli(capsys, "assign", str(scan), "--to", "olga")
    assert status == 0 and out == f"incident {scan} is acknowledged, assigned to olga\n"
    assert site.cli(capsys, "comment", str(scan), "pcap attached")[0] == 0
    status, out, _ = site.cli(capsys, "close", str(scan), "--disposition", "false_positive", "--reason", "lab")
    assert status == 0 and "closed as false_positive" in out
    status, _, err = site.cli(capsys, "close", str(scan), "--disposition", "benign", "--reason", "again")
    assert status == 6 and "closed" in err
    status, _, err = site.cli(capsys, "reopen", str(brute), "--reason", "x")
    assert status == 6
    assert site.cli(capsys, "ack", "999")[0] == 5
    assert site.cli(capsys, "comment", str(scan), "bell\x07")[0] == 4
    assert site.cli(capsys, "ack", str(brute), "--local")[0] == 77  # --local only reads

    site.caller = VERA
    status, _, err = site.cli(capsys, "reopen", str(scan), "--reason", "no")
    assert status == 77 and "operator" in err
    status, out, _ = site.cli(capsys, "notes", str(scan))
    assert status == 0 and [line.split("  ")[2] for line in out.splitlines()] == \
        ["[acknowledge]", "[assign]", "[comment]", "[close]"]
    assert "uid:1001:olga" in out
    remote = site.cli(capsys, "notes", str(scan), "--format", "json")
    assert remote == site.cli(capsys, "notes", str(scan), "--format", "json", "--local")

    status, out, _ = site.cli(capsys, "list", "--status", "closed", "--format", "json")
    listed = json.loads(out)
    assert [(i["id"], i["status"], i["disposition"], i["assignee"]) for i in listed] == \
        [(scan, "closed", "false_positive", "olga")]
    status, out, _ = site.cli(capsys, "list", "--status", "open,acknowledged", "--detector", "bruteforce",
                              "--search", "ssh", "--severity", "high")
    assert status == 0 and "SSH guessing" in out and "Port scan" not in out and "STATUS" in out
    with pytest.raises(SystemExit) as exited:  # argparse refuses it, naming the statuses
        site.cli(capsys, "list", "--status", "gone")
    assert exited.value.code == 2 and "open, acknowledged, closed" in capsys.readouterr().err
    status, out, _ = site.cli(capsys, "show", str(scan))
    assert status == 0 and "status closed" in out and "assignee olga, closed as false_positive by uid:1001:olga" in out
    assert "[comment]: pcap attached" in out
    shown = json.loads(site.cli(capsys, "show", str(scan), "--format", "json")[1])
    assert shown["disposition"] == "false_positive" and len(shown["notes"]) == 4
    site.caller = Identity(1005, "carla", frozenset({"wscomp"}), frozenset({"compliance", "viewer"}))
    assert main(["--config", str(site.config), "audit", "verify"]) == 0  # the chain holds every transition


def test_in_process_without_a_daemon(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    from support.incidents import make_app

    from watchstander.agent.clock import system_clock
    app = make_app(site.db.parent, system_clock)
    try:
        iid = write_incident(app, "l-1", [finding()])
    finally:
        app.store.close()
    status, out, _ = site.cli(capsys, "close", str(iid), "--disposition", "benign", "--reason", "backup")
    assert status == 0 and out == f"incident {iid} is closed as benign\n"
    status, out, _ = site.cli(capsys, "notes", str(iid), "--format", "json")
    note = json.loads(out)["notes"][0]
    assert note["kind"] == "close" and note["principal"].startswith("uid:")
    assert main(["--config", str(site.config), "audit", "verify"]) == 0
