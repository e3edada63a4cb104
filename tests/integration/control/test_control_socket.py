"""The control socket on a real Unix socket: permissions, SO_PEERCRED, roles, bad input, typed errors."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.cli.context import Context
from watchstander.agent.config.control import RolesConfig
from watchstander.agent.control.client import ControlClient, via_daemon_or_local
from watchstander.agent.control.errors import (
    EXIT_NOPERM,
    ControlError,
    DaemonNotRunning,
    InvalidParams,
    NoRole,
    PermissionDenied,
    RemoteError,
    UnknownMethod,
)
from watchstander.agent.control.identity import Identity, PeerCredentials, make_resolver
from watchstander.agent.control.registry import MethodRegistry
from watchstander.agent.errors import NotFoundError

pytestmark = pytest.mark.integration


class Accounts:
    """A two-user account database: alice views, bob is nobody."""

    users = {1001: ("alice", 1001), 1002: ("bob", 1002)}
    groups = {"alice": {"alice", "wsview"}, "bob": {"bob"}}

    def user(self, uid: int) -> tuple[str, int] | None:
        return self.users.get(uid)

    def group_names(self, username: str, primary_gid: int) -> set[str]:
        return self.groups[username]


def as_uid(uid: int, seen: list[PeerCredentials] | None = None) -> Any:
    """A resolver that keeps the real peer pid but pretends the caller is `uid` (no users need creating)."""
    resolve = make_resolver(RolesConfig(viewer=("wsview",), approver=("wsappr",)), Accounts())

    def resolver(cred: PeerCredentials) -> Identity:
        if seen is not None:
            seen.append(cred)
        return resolve(PeerCredentials(cred.pid, uid, uid))

    return resolver


def raw_exchange(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    """Send raw lines on one connection; every answer until the server hangs up or goes quiet."""
    answers = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        with s.makefile("rb") as reader:
            for line in lines:
                s.sendall(line)
                got = reader.readline()
                if not got:
                    break
                answers.append(json.loads(got))
    return answers


def test_socket_and_directory_permissions(control_server) -> None:  # type: ignore[no-untyped-def]
    srv = control_server()
    st = os.stat(srv.path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == 0
    assert stat.S_IMODE(os.stat(srv.path.parent).st_mode) == 0o750


def test_whoami_uses_the_kernels_peer_credentials(control_server) -> None:  # type: ignore[no-untyped-def]
    srv = control_server()
    me = ControlClient(srv.path).call("whoami")
    assert me["uid"] == os.geteuid() and me["pid"] == os.getpid()
    assert me["principal"] == Context().identity  # the same form as the no-daemon identity
    if os.geteuid() == 0:
        assert set(me["roles"]) == {"viewer", "operator", "approver", "admin", "compliance"}


def test_ping_lists_the_methods_the_caller_may_use(control_server, clock) -> None:  # type: ignore[no-untyped-def]
    registry = MethodRegistry()
    registry.register_method("x.approve", "approver", lambda who, p: {})
    registry.register_method("x.admin", "admin", lambda who, p: {})
    srv = control_server(registry, resolver=as_uid(1001))
    pong = ControlClient(srv.path).call("ping")
    assert pong["pong"] is True and pong["time"] == clock().isoformat()
    assert pong["methods"] == ["ping", "whoami"]  # alice is a viewer


def test_role_from_group_mapping_and_permission_denied(control_server) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    registry = MethodRegistry()
    registry.register_method("x.read", "viewer", lambda who, p: calls.append(who.principal) or {"read": True})
    registry.register_method("x.approve", "approver", lambda who, p: calls.append("approve") or {})
    seen: list[PeerCredentials] = []
    srv = control_server(registry, resolver=as_uid(1001, seen))
    client = ControlClient(srv.path)
    assert client.call("x.read") == {"read": True}
    assert seen[0].pid == os.getpid() and seen[0].uid == os.geteuid()  # real SO_PEERCRED reached the resolver
    with pytest.raises(PermissionDenied) as denied:
        client.call("x.approve", {"id": 1})
    assert denied.value.exit_status == EXIT_NOPERM and "approver" in str(denied.value)
    assert calls == ["uid:1001:alice"]  # the denied handler never ran


def test_a_user_without_a_role_is_refused_politely(control_server) -> None:  # type: ignore[no-untyped-def]
    srv = control_server(resolver=as_uid(1002))
    for method in ("ping", "whoami", "no.such"):
        with pytest.raises(NoRole) as err:
            ControlClient(srv.path).call(method)
        assert "bob has no Watchstander role" in str(err.value) and "[control.roles]" in str(err.value)
    srv_unknown = control_server(resolver=as_uid(4242), socket=srv.path.parent.parent / "other" / "c.sock")
    with pytest.raises(NoRole, match="uid 4242 has no Watchstander role"):
        ControlClient(srv_unknown.path).call("ping")


def test_unknown_method(control_server) -> None:  # type: ignore[no-untyped-def]
    srv = control_server()
    with pytest.raises(UnknownMethod, match="no control method 'nope.nope'"):
        ControlClient(srv.path).call("nope.nope")


def test_garbage_gets_an_error_and_the_connection_keeps_serving(control_server) -> None:  # type: ignore[no-untyped-def]
    srv = control_server()
    answers = raw_exchange(srv.path, b"not json\n", b"[1, 2]\n", b'{"method": 5}\n', b"\xff\xfe{}\n",
                           b'{"id": 7, "method": "ping", "params": []}\n', b'{"id": [1], "method": "ping"}\n',
                           b'{"id": "a", "method": "ping"}\n')
    assert [a["ok"] for a in answers] == [False] * 6 + [True]
    assert {a["error"]["code"] for a in answers[:6]} == {"bad_request"}
    assert all("Traceback" not in a["error"]["message"] for a in answers[:6])
    assert answers[4]["id"] is None and answers[6]["id"] == "a"


def test_oversized_request_is_answered_then_the_server_goes_on(control_server) -> None:  # type: ignore[no-untyped-def]
    srv = control_server(max_message=1024)
    big = b'{"method": "ping", "params": {"x": "' + b"A" * 5000 + b'"}}\n'
    answers = raw_exchange(srv.path, big, b'{"method": "ping"}\n', big, big, b'{"method": "ping"}\n')
    assert [a.get("error", {}).get("code") for a in answers] == ["too_large", None, "too_large", "too_large", None]
    assert answers[1]["result"]["pong"] is True  # the rest of the long line was skipped, framing kept
    assert ControlClient(srv.path).call("ping")["pong"] is True
    with pytest.raises(ControlError) as err:
        ControlClient(srv.path).call("ping", {"x": "B" * 2000})
    assert err.value.code == "too_large"


def test_handler_errors_cross_as_codes_never_tracebacks(control_server) -> None:  # type: ignore[no-untyped-def]
    def missing(who: Identity, params: dict[str, Any]) -> dict[str, Any]:
        raise NotFoundError("no incident 9")

    def broken(who: Identity, params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("secret internals /etc/shadow")

    def bad(who: Identity, params: dict[str, Any]) -> dict[str, Any]:
        raise InvalidParams("id: expected a positive integer")

    registry = MethodRegistry()
    registry.register_method("t.missing", "viewer", missing)
    registry.register_method("t.broken", "viewer", broken)
    registry.register_method("t.bad", "viewer", bad)
    registry.register_method("t.notdict", "viewer", lambda who, p: [1])  # type: ignore[arg-type,return-value]
    srv = control_server(registry)
    client = ControlClient(srv.path)
    with pytest.raises(RemoteError) as err:
        client.call("t.missing")
    assert (err.value.code, err.value.exit_status, str(err.value)) == ("not_found", 5, "no incident 9")
    for method in ("t.broken", "t.notdict"):
        with pytest.raises(RemoteError) as err:
            client.call(method)
        assert err.value.code == "internal" and "shadow" not in str(err.value)
    with pytest.raises(InvalidParams) as invalid:
        client.call("t.bad")
    assert invalid.value.exit_status == 4
    assert client.call("ping")["pong"] is True  # still serving


def test_no_daemon_is_daemon_not_running_and_the_local_fallback_runs(short_dir: Path) -> None:
    absent = short_dir / "absent.sock"
    with pytest.raises(DaemonNotRunning):
        ControlClient(absent).call("ping")
    stale = short_dir / "stale.sock"  # a socket file left by a daemon that died
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    with pytest.raises(DaemonNotRunning):
        ControlClient(stale).call("ping")
    for path in (absent, stale):
        cfg = short_dir / "w.toml"
        cfg.write_text(f'[store]\nurl = "sqlite:///{short_dir}/w.db"\n[control]\nsocket = "{path}"\n')
        ctx = Context(config_path=cfg)
        got = via_daemon_or_local(ctx, "suggestions.list", {}, lambda who: {"local": who})
        assert got == {"local": ctx.identity}


def test_a_running_daemon_is_used_and_carries_the_authenticated_identity(control_server, short_dir) -> None:  # type: ignore[no-untyped-def]
    registry = MethodRegistry()
    registry.register_method("t.echo", "viewer", lambda who, p: {"who": who.principal, "params": p})
    registry.register_method("t.admin", "admin", lambda who, p: {})
    srv = control_server(registry, resolver=as_uid(1001))
    cfg = short_dir / "w.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{short_dir}/w.db"\n[control]\nsocket = "{srv.path}"\n')
    ctx = Context(config_path=cfg)
    got = via_daemon_or_local(ctx, "t.echo", {"id": 3, "actor": "uid:0:root"}, lambda who: {"local": who})
    assert got == {"who": "uid:1001:alice", "params": {"id": 3, "actor": "uid:0:root"}}  # no say in who it is
    local_calls: list[str] = []
    with pytest.raises(PermissionDenied):  # the daemon is there: a refusal is no reason to go around it
        via_daemon_or_local(ctx, "t.admin", {}, local_calls.append)
    assert local_calls == []
    assert via_daemon_or_local(ctx, "t.echo", {}, lambda who: {"local": who}, local=True) == {"local": ctx.identity}


def test_start_refuses_a_live_socket_and_replaces_a_stale_one(control_server, short_dir: Path) -> None:  # type: ignore[no-untyped-def]
    srv = control_server()
    with pytest.raises(ControlError, match="already serving"):
        control_server(socket=srv.path)
    srv.stop()
    assert not srv.path.exists()  # stop removes its socket
    stale = short_dir / "run" / "control.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    again = control_server(socket=stale)
    assert ControlClient(again.path).call("ping")["pong"] is True
    plain = short_dir / "plain"
    plain.write_text("not a socket")
    with pytest.raises(ControlError, match="not a socket"):
        control_server(socket=plain)
    assert plain.read_text() == "not a socket"


def test_a_missing_socket_group_is_a_config_error_naming_the_key(control_server) -> None:  # type: ignore[no-untyped-def]
    from watchstander.agent.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        control_server(socket_group="no-such-group-xyz")
    assert err.value.problems[0][0] == "control.socket_group"


def test_a_world_writable_directory_is_refused(control_server, short_dir: Path) -> None:  # type: ignore[no-untyped-def]
    loose = short_dir / "loose"
    loose.mkdir()
    os.chmod(loose, 0o777)
    with pytest.raises(ControlError, match="world-writable"):
        control_server(socket=loose / "c.sock")
