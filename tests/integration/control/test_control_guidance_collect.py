"""guidance.* and collect.* over the control socket: when a daemon runs, the tracker and the SSH
snapshots are read and changed through it with the caller's roles, and the CLI takes that door."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from watchstander.agent.app.wiring import App
from watchstander.agent.cli import main as cli
from watchstander.agent.clock import system_clock
from watchstander.agent.config.control import RolesConfig
from watchstander.agent.config.load import validate_config
from watchstander.agent.control.client import ControlClient
from watchstander.agent.control.errors import InvalidParams, PermissionDenied, RemoteError
from watchstander.agent.control.identity import Identity, PeerCredentials, make_resolver
from watchstander.agent.control.wiring import build_registry
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.schema import open_store
from watchstander.agent.store.snapshots import SnapshotStore

pytestmark = pytest.mark.integration

PEOPLE = {1001: ("vera", "wsview"), 1003: ("carol", "wsaudit"), 1004: ("alice", "wsappr")}


def _client(control_server: Any, app: App, who: dict[str, int]) -> ControlClient:
    class Accounts:
        def user(self, uid: int) -> tuple[str, int] | None:
            return (PEOPLE[uid][0], uid) if uid in PEOPLE else None

        def group_names(self, username: str, gid: int) -> set[str]:
            return {g for name, g in PEOPLE.values() if name == username}

    resolve = make_resolver(RolesConfig(viewer=("wsview",), compliance=("wsaudit",), approver=("wsappr",)),
                            Accounts())

    def resolver(cred: PeerCredentials) -> Identity:
        return resolve(PeerCredentials(cred.pid, who["uid"], who["uid"]))

    return ControlClient(control_server(build_registry(app), resolver=resolver).path)


def test_the_tracker_is_read_by_viewers_and_changed_by_compliance_through_the_socket(
        control_server: Any, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    app = App(validate_config({}), store, system_clock)
    who = {"uid": 1001}
    try:
        client = _client(control_server, app, who)
        status = client.call("guidance.status", {"as_of": "2026-08-01", "orders": ["eo14409"]})
        assert status["as_of"] == "2026-08-01" and status["obligations"]
        first = status["obligations"][0]["id"]
        shown = client.call("guidance.show", {"id": first})
        assert shown["obligation"]["id"] == first and shown["history"] == []
        for method, params in (("guidance.update", {"id": first, "owner": "vera"}),
                               ("guidance.export", {"format": "csv"}),
                               ("guidance.event", {"name": "x", "date": "2026-08-01"})):
            with pytest.raises(PermissionDenied):
                client.call(method, params)

        who["uid"] = 1003  # compliance
        state = client.call("guidance.update", {"id": first, "owner": "J. Carol", "status": "in_progress",
                                                "evidence": [{"kind": "url", "ref": "https://example.mil/poam"}]})
        assert state["state"]["owner"] == "J. Carol" and state["state"]["status"] == "in_progress"
        history = client.call("guidance.show", {"id": first})["history"]
        assert history and {h["actor"] for h in history} == {"uid:1003:carol"}  # the socket's identity, not a form
        pdf = client.call("guidance.export", {"format": "pdf", "as_of": "2026-08-01"})
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(base64.b64decode(pdf["content_b64"]))).pages)
        assert "14409" in text and pdf["obligations"] > 0
        assert client.call("guidance.event", {"name": "nspm11-waiver-granted", "date": "2026-08-02"}) \
            == {"referenced": True}
        with pytest.raises(RemoteError) as err:
            client.call("guidance.show", {"id": "no-such-obligation"})
        assert err.value.exit_status == 5
        for bad in ({"format": "exe"}, {"format": "pdf", "as_of": "yesterday"}, {"format": "csv", "orders": "x"}):
            with pytest.raises(InvalidParams):
                client.call("guidance.export", bad)
        with pytest.raises(InvalidParams):
            client.call("guidance.update", {"id": first, "evidence": [{"kind": "file", "ref": "/etc/shadow",
                                                                       "sha256": "00"}]})
        assert AuditLog(store, system_clock).verify().ok
    finally:
        app.close()
        store.close()


def test_snapshots_are_read_by_viewers_and_baselines_approved_by_approvers(control_server: Any,
                                                                          tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    app = App(validate_config({}), store, system_clock)
    who = {"uid": 1001}
    try:
        snaps = SnapshotStore(store, system_clock, app.audit)
        snaps.record("edge1", "show running-config", "config", "hostname edge1\n", auto_baseline=True)
        snaps.record("edge1", "show running-config", "config", "hostname edge1\nip route 0.0.0.0 0.0.0.0 6.6.6.6\n")
        client = _client(control_server, app, who)
        listed = client.call("collect.list")["snapshots"]
        assert [(r["device"], r["state"]) for r in listed] == [("edge1", "DRIFT")]
        shown = client.call("collect.show", {"device": "edge1"})["commands"][0]
        assert "+ip route 0.0.0.0 0.0.0.0 6.6.6.6" in shown["diff"]
        with pytest.raises(PermissionDenied):
            client.call("collect.baseline", {"device": "edge1"})
        who["uid"] = 1004  # approver
        approved = client.call("collect.baseline", {"device": "edge1"})["baselines"]
        assert approved[0]["approved_by"] == "uid:1004:alice"
        assert client.call("collect.list")["snapshots"][0]["state"] == "ok"
        with pytest.raises(RemoteError) as err:
            client.call("collect.show", {"device": "nope"})
        assert err.value.exit_status == 5
        with pytest.raises(InvalidParams):
            client.call("collect.baseline", {"device": "edge1", "snapshot": -1})
    finally:
        app.close()
        store.close()


def test_the_cli_takes_the_daemon_door_when_one_answers(control_server: Any, short_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI never opens the store when a daemon answers: the store here is not even readable by name."""
    store = open_store(f"sqlite:///{tmp_path / 'daemon.db'}")
    socket_path = short_dir / "run" / "control.sock"
    app = App(validate_config({}), store, system_clock)
    try:
        control_server(build_registry(app), socket=socket_path)
        config = tmp_path / "cli.toml"
        config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "absent" / "cli.db"}"\n'
                          f'[control]\nsocket = "{socket_path}"\nsocket_group = "root"\n')
        out = tmp_path / "report.json"
        assert cli.main(["--config", str(config), "guidance", "export", "--format", "json", "--out", str(out),
                         "--as-of", "2026-08-01"]) == 0
        assert json.loads(out.read_text())["as_of"] == "2026-08-01"
        assert cli.main(["--config", str(config), "guidance", "update", "eo14409-2a", "--owner", "SOC lead"]) == 0
        capsys.readouterr()
        assert cli.main(["--config", str(config), "guidance", "status", "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)["obligations"]
        assert next(r for r in rows if r["id"] == "eo14409-2a")["owner"] == "SOC lead"
        assert cli.main(["--config", str(config), "collect", "list"]) == 0
        assert not (tmp_path / "absent").exists()  # nothing was opened or created on the CLI's side
    finally:
        app.close()
        store.close()
