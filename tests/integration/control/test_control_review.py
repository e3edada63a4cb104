"""suggestions.* over the control socket: roles per method, the caller's principal reaches the queue."""

from __future__ import annotations

import os
from typing import Any

import pytest

from watchstander.agent.config.control import RolesConfig
from watchstander.agent.control.client import ControlClient
from watchstander.agent.control.errors import InvalidParams, PermissionDenied, RemoteError
from watchstander.agent.control.identity import Identity, PeerCredentials, make_resolver
from watchstander.agent.control.registry import MethodRegistry
from watchstander.agent.control.review_methods import REVIEW_METHODS, register_review_methods

pytestmark = pytest.mark.integration


def test_roles_are_declared_once() -> None:
    assert REVIEW_METHODS == {"suggestions.list": "viewer", "suggestions.show": "viewer",
                              "suggestions.approve": "approver", "suggestions.reject": "approver",
                              "suggestions.edit": "operator"}


def test_a_real_queue_over_the_socket(control_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from watchstander.agent.app.wiring import App
    from watchstander.agent.clock import system_clock
    from watchstander.agent.config.load import validate_config
    from watchstander.agent.control.wiring import build_registry
    from watchstander.agent.store.schema import open_store

    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        registry = build_registry(App(validate_config({}), store, system_clock))
        srv = control_server(registry)
        client = ControlClient(srv.path)
        assert client.call("suggestions.list") == {"suggestions": []}
        with pytest.raises(RemoteError) as err:
            client.call("suggestions.show", {"id": 999})
        assert (err.value.code, err.value.exit_status, err.value.details["suggestion_id"]) == \
            ("suggestion_not_found", 5, 999)
        with pytest.raises(InvalidParams):
            client.call("suggestions.reject", {"id": 1, "reason": "  "})
        with pytest.raises(InvalidParams):
            client.call("suggestions.list", {"state": "bogus"})
    finally:
        store.close()


class Recorded:
    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def as_dict(self) -> dict[str, Any]:
        return self.fields


class RecordingQueue:
    """Stands in for ReviewQueue to show which principal each operation is attributed to."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def expire_due(self) -> list[int]:
        return []

    def approve(self, sid: int, approver: str, comment: str = "") -> Recorded:
        self.calls.append(("approve", sid, approver, comment))
        return Recorded(id=sid, state="approved")

    def reject(self, sid: int, actor: str, reason: str) -> Recorded:
        self.calls.append(("reject", sid, actor, reason))
        return Recorded(id=sid, state="rejected")

    def edit(self, sid: int, editor: str, changes: dict[str, object], comment: str = "") -> Recorded:
        self.calls.append(("edit", sid, editor, changes))
        return Recorded(id=sid + 1, state="pending")


def test_each_method_needs_its_role_and_acts_as_the_caller(control_server) -> None:  # type: ignore[no-untyped-def]
    queue = RecordingQueue()
    registry = MethodRegistry()
    register_review_methods(registry, lambda: queue)  # type: ignore[arg-type,return-value]
    accounts = {1001: ("olga", 1001), 1002: ("abe", 1002)}
    groups = {"olga": {"wsoper"}, "abe": {"wsappr"}}

    class Accounts:
        def user(self, uid: int) -> tuple[str, int] | None:
            return accounts.get(uid)

        def group_names(self, username: str, gid: int) -> set[str]:
            return groups[username]

    resolve = make_resolver(RolesConfig(operator=("wsoper",), approver=("wsappr",)), Accounts())
    current = {"uid": 1001}

    def resolver(cred: PeerCredentials) -> Identity:
        assert cred.pid == os.getpid()
        return resolve(PeerCredentials(cred.pid, current["uid"], current["uid"]))

    srv = control_server(registry, resolver=resolver)
    client = ControlClient(srv.path)
    # olga, operator: may edit, may not approve or reject.
    assert client.call("suggestions.edit", {"id": 4, "changes": {"address": "10.0.0.9"}})["suggestion"]["id"] == 5
    for method, params in (("suggestions.approve", {"id": 5}), ("suggestions.reject", {"id": 5, "reason": "no"})):
        with pytest.raises(PermissionDenied):
            client.call(method, params)
    # abe, approver: may approve and reject, may not edit.
    current["uid"] = 1002
    assert client.call("suggestions.approve", {"id": 5, "comment": "ok"})["suggestion"]["state"] == "approved"
    assert client.call("suggestions.reject", {"id": 6, "reason": "noise"})["suggestion"]["state"] == "rejected"
    with pytest.raises(PermissionDenied):
        client.call("suggestions.edit", {"id": 5, "changes": {"address": "10.0.0.1"}})
    assert queue.calls == [("edit", 4, "uid:1001:olga", {"address": "10.0.0.9"}),
                           ("approve", 5, "uid:1002:abe", "ok"), ("reject", 6, "uid:1002:abe", "noise")]
