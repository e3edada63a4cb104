"""incidents.* and runs.* over the control socket: the viewer role reads, others are refused; no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchstander.agent.app.replay import replay
from watchstander.agent.app.wiring import App
from watchstander.agent.clock import system_clock
from watchstander.agent.config.control import RolesConfig
from watchstander.agent.config.load import ConfigError, config_files, validate_config
from watchstander.agent.control.client import ControlClient
from watchstander.agent.control.errors import InvalidParams, PermissionDenied, RemoteError
from watchstander.agent.control.identity import Identity, PeerCredentials, make_resolver
from watchstander.agent.control.wiring import build_registry
from watchstander.agent.demo.data import write_demo_telemetry
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration


def test_incidents_and_runs_are_read_through_the_socket_with_the_viewer_role(control_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    app = App(validate_config({}), store, system_clock)
    try:
        replay(app, write_demo_telemetry(tmp_path / "t", system_clock()), "uid:0:root")
        accounts = {1001: ("vera", 1001), 1002: ("nobody2", 1002)}

        class Accounts:
            def user(self, uid: int) -> tuple[str, int] | None:
                return accounts.get(uid)

            def group_names(self, username: str, gid: int) -> set[str]:
                return {"wsview"} if username == "vera" else set()

        resolve = make_resolver(RolesConfig(viewer=("wsview",)), Accounts())
        current = {"uid": 1001}

        def resolver(cred: PeerCredentials) -> Identity:
            return resolve(PeerCredentials(cred.pid, current["uid"], current["uid"]))

        client = ControlClient(control_server(build_registry(app), resolver=resolver).path)
        incidents = client.call("incidents.list")["incidents"]
        assert incidents and all("findings" not in i for i in incidents)
        shown = client.call("incidents.show", {"id": incidents[0]["id"]})["incident"]
        assert shown["findings"] and len(shown["guard"]) == len(shown["verdict"]["recommended_actions"])
        assert client.call("runs.list") == {"runs": []}
        with pytest.raises(RemoteError) as err:
            client.call("runs.show", {"id": 7})
        assert err.value.exit_status == 5
        with pytest.raises(RemoteError) as err:
            client.call("incidents.show", {"id": 10**9})
        assert err.value.exit_status == 5
        for bad in ({"id": 0}, {"id": "1"}, {"id": True}):
            with pytest.raises(InvalidParams):
                client.call("incidents.show", bad)
        with pytest.raises(InvalidParams):
            client.call("runs.list", {"state": "bogus"})
        current["uid"] = 1002  # a member of the socket's group with no role
        for method in ("incidents.list", "runs.list"):
            with pytest.raises(PermissionDenied):
                client.call(method)
    finally:
        app.close()
        store.close()


def test_an_unreadable_config_folder_is_a_config_error_not_a_traceback(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    main = tmp_path / "etc" / "watchstander.toml"

    def denied(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    # Root reads through any mode, so the refusal a non-member meets is simulated at the stat call.
    monkeypatch.setattr(Path, "exists", denied)
    with pytest.raises(ConfigError) as info:
        config_files(main)
    assert "permission denied" in str(info.value) and str(main) in str(info.value)
