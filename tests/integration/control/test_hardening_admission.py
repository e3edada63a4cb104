"""Control-socket admission: callers are identified before they take a slot, then admitted per uid and role.

Hostile connections come from a child process (its own pid, so the resolver can tell it apart from
the test process); every socket is real and under /tmp.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.config.control import RolesConfig
from watchstander.agent.control.client import ControlClient
from watchstander.agent.control.errors import ControlError
from watchstander.agent.control.identity import Identity, PeerCredentials, make_resolver
from watchstander.agent.control.registry import MethodRegistry
from watchstander.agent.control.server import MAX_CONNECTIONS, MAX_PER_UID

pytestmark = pytest.mark.integration

ROLES = RolesConfig(viewer=("wsview",), approver=("wsappr",))


class Accounts:
    """uid 1002 (bob) has no role, uid 1003 (carol) approves, every other uid from 2000 up views."""

    def user(self, uid: int) -> tuple[str, int] | None:
        names = {1002: "bob", 1003: "carol"}
        return (names.get(uid, f"viewer{uid}"), uid)

    def group_names(self, username: str, primary_gid: int) -> set[str]:
        return {"bob": {"bob"}, "carol": {"carol", "wsappr"}}.get(username, {username, "wsview"})


def by_pid(others: str, me: int = 1003) -> Any:
    """Connections from this process are `me`; from any other process: bob (`others="norole"`),
    one viewer uid (`"viewer"`) or a fresh viewer uid each (`"viewers"`)."""
    resolve = make_resolver(ROLES, Accounts())
    fresh = itertools.count(3000)

    def resolver(cred: PeerCredentials) -> Identity:
        if cred.pid == os.getpid():
            uid = me
        else:
            uid = {"norole": 1002, "viewer": 2000}.get(others) or next(fresh)
        return resolve(PeerCredentials(cred.pid, uid, uid))

    return resolver


HOLDER = r"""
import json, socket, sys
path, count = sys.argv[1], int(sys.argv[2])
held, answers = [], []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    held.append(s)
for s in held:  # a quick look at what each got: an answer, or silence (still held)
    s.settimeout(0.05)
    try:
        answers.append(s.recv(4096).decode() or "eof")
    except socket.timeout:
        answers.append("held")
print(json.dumps(answers), flush=True)
sys.stdin.read()  # hold every connection until the test closes stdin
"""


class Holder:
    """A child process that opens `count` connections to the socket and keeps them open."""

    def __init__(self, path: Path, count: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(count)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.answers: list[str] = json.loads(line)

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    """Holders started by a test, closed at its end."""
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.close()


def ping_on(sock: socket.socket) -> dict[str, Any]:
    """One ping on an open connection."""
    sock.sendall(b'{"id": 1, "method": "ping"}\n')
    with sock.makefile("rb") as reader:
        answer: dict[str, Any] = json.loads(reader.readline())
    return answer


def test_connections_from_a_caller_without_a_role_do_not_starve_an_approver(control_server, holders) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    registry = MethodRegistry()
    registry.register_method("x.approve", "approver", lambda who, p: calls.append(who.principal) or {"ok": True})
    srv = control_server(registry, resolver=by_pid("norole"), timeout_s=30)
    holders.append(Holder(srv.path, MAX_CONNECTIONS + 6))
    failures = []
    for _ in range(10):
        try:
            ControlClient(srv.path).call("x.approve")
        except ControlError as exc:
            failures.append(exc)
    assert failures == []
    assert calls == ["uid:1003:carol"] * 10


def test_a_caller_without_a_role_is_refused_at_once(control_server) -> None:  # type: ignore[no-untyped-def]
    srv = control_server(resolver=by_pid("norole", me=1002), timeout_s=30)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect(str(srv.path))
        started = time.monotonic()
        with s.makefile("rb") as reader:
            answer = json.loads(reader.readline())  # sent before any request
            assert reader.readline() == b""  # and the connection is closed
    assert time.monotonic() - started < 2
    assert answer["ok"] is False and answer["error"]["code"] == "no_role" and answer["error"]["exit_status"] == 77


def test_at_most_max_per_uid_connections_per_uid(control_server) -> None:  # type: ignore[no-untyped-def]
    srv = control_server(resolver=by_pid("viewer", me=2000), timeout_s=30)
    opened: list[socket.socket] = []
    try:
        for _ in range(MAX_PER_UID):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(str(srv.path))
            opened.append(s)
            assert ping_on(s)["ok"] is True
        with pytest.raises(ControlError) as busy:
            ControlClient(srv.path).call("ping")
        assert busy.value.code == "busy" and busy.value.exit_status == 69, busy.value
        opened.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the server notices the hang-up on its next loop turn
            try:
                assert ControlClient(srv.path).call("ping")["pong"] is True
                break
            except ControlError:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    finally:
        for s in opened:
            s.close()


def test_viewers_cannot_take_the_approvers_share(control_server, holders) -> None:  # type: ignore[no-untyped-def]
    srv = control_server(resolver=by_pid("viewers"), timeout_s=30)
    holder = Holder(srv.path, MAX_CONNECTIONS + 6)  # a fresh viewer uid each: the per-uid limit never bites
    holders.append(holder)
    held = holder.answers.count("held")
    assert 0 < held < MAX_CONNECTIONS  # some were turned away: the rest is kept for approvers
    assert all(a == "held" or '"busy"' in a for a in holder.answers)
    for _ in range(5):
        assert ControlClient(srv.path).call("whoami")["principal"] == "uid:1003:carol"


def test_idle_connections_are_closed_after_timeout_s(control_server) -> None:  # type: ignore[no-untyped-def]
    srv = control_server(resolver=by_pid("viewer", me=2000), timeout_s=0.3)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(srv.path))
        started = time.monotonic()
        assert s.recv(1) == b""
        assert time.monotonic() - started < 3


def test_concurrent_approvers_within_the_limits_all_get_through(control_server) -> None:  # type: ignore[no-untyped-def]
    registry = MethodRegistry()
    gate = threading.Barrier(MAX_PER_UID)
    registry.register_method("x.approve", "approver", lambda who, p: {"ok": True})
    srv = control_server(registry, resolver=by_pid("norole"))
    results: list[Any] = []

    def one() -> None:
        gate.wait(5)
        try:
            results.append(ControlClient(srv.path).call("x.approve"))
        except ControlError as exc:
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(MAX_PER_UID)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [{"ok": True}] * MAX_PER_UID
