"""Pure logic of the control socket: role mapping from fake account data, registry, protocol, errors."""

from __future__ import annotations

import pytest

from watchstander.agent.config.control import RolesConfig
from watchstander.agent.config.load import validate_config
from watchstander.agent.control.errors import (
    InvalidParams,
    NoRole,
    PermissionDenied,
    ProtocolError,
    RemoteError,
    UnknownMethod,
    error_code,
    from_wire,
)
from watchstander.agent.control.identity import Identity, PeerCredentials, make_resolver, roles_for
from watchstander.agent.control.protocol import decode_request
from watchstander.agent.control.registry import MethodRegistry
from watchstander.agent.errors import ConfigError, NotFoundError

MAPPING = RolesConfig(viewer=("wsview",), operator=("wsoper",), approver=("wsappr",), admin=("wsadmin",),
                      compliance=("wsaudit",))


class FakeAccounts:
    passwd = {0: ("root", 0), 1001: ("alice", 1001), 1002: ("bob", 1002), 1003: ("carol", 1003),
              1004: ("dave", 1004), 1005: ("erin", 1005)}
    members = {"root": {"root"}, "alice": {"alice", "wsview"}, "bob": {"bob", "wsoper", "wsappr"},
               "carol": {"carol", "wsadmin"}, "dave": {"dave", "users"}, "erin": {"erin", "wsaudit"}}

    def user(self, uid: int) -> tuple[str, int] | None:
        return self.passwd.get(uid)

    def group_names(self, username: str, primary_gid: int) -> set[str]:
        return self.members[username]


@pytest.mark.parametrize(("uid", "principal", "roles"), [
    (0, "uid:0:root", {"viewer", "operator", "approver", "admin", "compliance"}),
    (1001, "uid:1001:alice", {"viewer"}),
    (1002, "uid:1002:bob", {"viewer", "operator", "approver"}),
    (1003, "uid:1003:carol", {"viewer", "operator", "approver", "admin", "compliance"}),
    (1004, "uid:1004:dave", set()),
    (1005, "uid:1005:erin", {"viewer", "compliance"}),
    (4242, "uid:4242", set()),  # no passwd entry
])
def test_groups_map_to_roles(uid: int, principal: str, roles: set[str]) -> None:
    who = make_resolver(MAPPING, FakeAccounts())(PeerCredentials(pid=77, uid=uid, gid=uid))
    assert who.principal == principal and set(who.roles) == roles and who.pid == 77


def test_the_peers_current_gid_grants_nothing() -> None:
    # dave switched his process's gid to wsadmin's with newgrp: the account database decides, not that.
    who = make_resolver(MAPPING, FakeAccounts())(PeerCredentials(pid=1, uid=1004, gid=999))
    assert who.roles == frozenset()


def test_operator_does_not_imply_approver_and_roles_for_is_pure() -> None:
    assert roles_for({"wsoper"}, MAPPING, 1000) == {"operator", "viewer"}
    assert roles_for({"wsappr"}, MAPPING, 1000) == {"approver", "viewer"}
    assert roles_for((), RolesConfig(), 0) >= {"admin", "approver"}


def test_registry_is_a_dict_of_dotted_names_and_duplicates_raise() -> None:
    reg = MethodRegistry()
    reg.register_method("a.b", "viewer", lambda who, p: {})
    with pytest.raises(ValueError, match="already registered"):
        reg.register_method("a.b", "admin", lambda who, p: {})
    with pytest.raises(ValueError, match="unknown role"):
        reg.register_method("a.c", "superuser", lambda who, p: {})  # type: ignore[arg-type]
    assert reg.names() == ["a.b"] and reg.get("a.b").role == "viewer"  # type: ignore[union-attr]


@pytest.mark.parametrize("line", [b"", b"nope", b"[]", b"{}", b'{"method": ""}', b'{"method": "A B"}',
                                  b'{"method": "x", "params": [1]}', b'{"method": "x", "id": true}',
                                  b"[" * 100000])
def test_bad_requests_are_protocol_errors(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_request(line)


def test_a_good_request() -> None:
    assert decode_request(b'{"id": 3, "method": "suggestions.list", "params": null}') == (3, "suggestions.list", {})


def test_error_codes_and_their_way_back() -> None:
    assert error_code(NotFoundError("x")) == "not_found"
    assert error_code(ConfigError("x")) == "config"
    assert error_code(NoRole("x")) == "no_role"
    assert isinstance(from_wire("no_role", "m", 77), NoRole)
    assert isinstance(from_wire("permission_denied", "m", 77), PermissionDenied)
    assert isinstance(from_wire("invalid_params", "m", 4), InvalidParams)
    assert isinstance(from_wire("unknown_method", "m", 1), UnknownMethod)
    err = from_wire("already_decided", "taken", 6, {"suggestion_id": 4})
    assert type(err) is RemoteError and err.exit_status == 6 and err.details == {"suggestion_id": 4}


def test_identity_principal_matches_the_cli_form() -> None:
    assert Identity(uid=5, username="x").principal == "uid:5:x"


def test_control_config_keys_are_validated() -> None:
    cfg = validate_config({"control": {"socket": "/run/w/c.sock", "socket_group": "wsctl",
                                       "roles": {"approver": ["wsappr"]}}}).control
    assert cfg.roles.approver == ("wsappr",) and cfg.socket_group == "wsctl"
    with pytest.raises(ConfigError) as err:
        validate_config({"control": {"socket": "/" + "x" * 120, "roles": {"viewer": ["a b"], "boss": ["x"]},
                                     "max_message": 10}})
    keys = {k for k, _ in err.value.problems}
    assert {"control.socket", "control.roles.viewer", "control.roles.boss", "control.max_message"} <= keys
