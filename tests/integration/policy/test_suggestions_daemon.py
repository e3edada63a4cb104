"""`watchstander suggestions ...` through the real CLI: over a running daemon's socket, or in-process.

A real ControlServer (agent/control/wiring.build_control_server) on a Unix socket under /tmp, on
its own event loop thread, over a real SQLite file. The test process runs as root (admin), so the
server gets an injected resolver that says who the caller is; that is how the tests tell which
mode a command ran in: over the socket the actor is the resolver's principal and its roles apply,
in-process it is the invoking OS user with no role check.
"""

from __future__ import annotations

import asyncio
import logging
import grp
import json
import os
import shutil
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.app.wiring import App
from watchstander.agent.cli import suggestions as cli_suggestions
from watchstander.agent.cli.context import Context
from watchstander.agent.cli.main import main
from watchstander.agent.clock import Clock, system_clock
from watchstander.agent.config.load import load_config
from watchstander.agent.control.errors import RemoteError
from watchstander.agent.control.identity import Identity, PeerCredentials, Role
from watchstander.agent.control.wiring import build_control_server
from watchstander.agent.models import Incident, Provenance, RecommendedAction, TriageVerdict
from watchstander.agent.policy.errors import SuggestionExpired
from watchstander.agent.store.approvals import ApprovalStore
from watchstander.agent.store.schema import open_store
from watchstander.playbooks import load_library

pytestmark = pytest.mark.integration

OLGA = Identity(1001, "olga", frozenset({"wsoper"}), frozenset({"operator", "viewer"}))
ABE = Identity(1002, "abe", frozenset({"wsappr"}), frozenset({"approver", "viewer"}))
NOBODY = Identity(1003, "nobody", frozenset({"users"}), frozenset())


@dataclass
class Site:
    """A config file, its store and socket paths, and who the injected resolver says is calling."""

    config: Path
    db: Path
    socket: Path
    caller: Identity = ABE

    def cli(self, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
        """`watchstander --config ... suggestions ARGV` through the real main(); (status, out, err)."""
        status = main(["--config", str(self.config), "suggestions", *argv])
        out = capsys.readouterr()
        return status, out.out, out.err

    def resolve(self, cred: PeerCredentials) -> Identity:
        """The injected resolver: the kernel's pid is real, the account is the one the test chose."""
        assert cred.uid == os.geteuid()
        return replace(self.caller, pid=cred.pid)

    def audit(self, action: str) -> list[tuple[str, str]]:
        """(actor, subject) of every audit record with this action, in order."""
        con = sqlite3.connect(self.db)
        try:
            return [(r[0], r[1]) for r in con.execute(
                "SELECT actor, subject FROM audit_log WHERE action = ? ORDER BY seq", (action,))]
        finally:
            con.close()


@pytest.fixture
def site(tmp_path: Path, cli_policy_toml: str) -> Iterator[Site]:
    """A site config whose [control] socket lives in a short directory under /tmp (sun_path limit)."""
    short = Path(tempfile.mkdtemp(prefix="wss", dir="/tmp"))
    sock = short / "run" / "control.sock"
    db = tmp_path / "w.db"
    group = grp.getgrgid(os.getgid()).gr_name
    config = tmp_path / "watchstander.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n{cli_policy_toml}\n'
                      f'[control]\nsocket = "{sock}"\nsocket_group = "{group}"\n', encoding="utf-8")
    yield Site(config, db, sock)
    shutil.rmtree(short, ignore_errors=True)


def seed(site: Site, clock: Clock = system_clock, address: str = "203.0.113.9") -> list[int]:
    """Approve the shipped playbooks; suggest a medium-risk block and a high-risk port shutdown."""
    ctx = Context(config_path=site.config, clock=clock)
    try:
        approvals = ApprovalStore(ctx.store, ctx.audit, ctx.clock)
        for playbook in load_library():
            approvals.approve_with(playbook, ("uid:0:root", "uid:65534:nobody"))
        verdict = TriageVerdict(
            severity="high", confidence=0.9, disposition="true_positive", summary="s", rationale="r",
            recommended_actions=(
                RecommendedAction(playbook="block-address-nftables", parameters={"address": address},
                                  justification="stop the guessing"),
                RecommendedAction(playbook="switch-port-shutdown", parameters={"if_index": 7}),
            ),
            provenance=Provenance(analyst="baseline", analyst_version="t"))
        out = cli_suggestions.build_queue(ctx).review(
            Incident("fp", address, "t", "high", 0, 0, id=1), verdict, actor="test")
        return [s.id for s in out.created]
    finally:
        ctx.close()


@pytest.fixture
def daemon(site: Site, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Factory: start the daemon's real control server for `site`, with the site's resolver."""
    running: list[tuple[Any, asyncio.AbstractEventLoop, threading.Thread, Any]] = []
    # The daemon runs in this process here, so its own log lines would land in the CLI's captured
    # stderr, which the tests compare with the no-daemon run; a real daemon logs to the journal.
    server_log = logging.getLogger("watchstander.agent.control.server")
    monkeypatch.setattr(server_log, "level", logging.WARNING)

    def start() -> None:
        config = load_config(site.config)
        store = open_store(config.store.resolved_url())
        server = build_control_server(App(config, store, system_clock), resolver=site.resolve)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="suggestions-daemon", daemon=True)
        thread.start()
        running.append((server, loop, thread, store))
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)

    yield start
    for server, loop, thread, store in running:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        store.close()


def local_identity() -> str:
    """Who the CLI acts as in-process: the invoking OS user."""
    return str(Context().identity)


def test_every_command_goes_over_the_socket_as_the_authenticated_caller(
        site: Site, daemon: Callable[[], None], capsys: pytest.CaptureFixture[str]) -> None:
    medium, high = seed(site)
    con = sqlite3.connect(site.db)
    with con:  # text from a model may carry terminal escapes (the guard refuses them; a tamperer may not)
        con.execute("UPDATE suggestions SET justification = ? WHERE id = ?", ("stop \x1b[2J\u202eit", medium))
    con.close()
    daemon()
    # Viewing: the same output over the socket as in-process, escapes shown escaped.
    for argv in (("list",), ("list", "--format", "json"), ("list", "--state", "pending", "--incident", "1"),
                 ("show", str(medium)), ("show", str(medium), "--format", "json")):
        remote, local = site.cli(capsys, *argv), site.cli(capsys, *argv, "--local")
        assert remote[0] == 0 and remote == local, argv
    status, out, _ = site.cli(capsys, "show", str(medium))
    assert "\x1b" not in out and "\u202e" not in out and "stop \\x1b[2J\\u202eit" in out

    # An operator may edit over the socket; the daemon's principal is the requester of the new one.
    site.caller = OLGA
    status, out, _ = site.cli(capsys, "edit", str(high), "--param", "if_index=9", "--comment", "wrong port")
    assert status == 0 and f"replaces #{high}" in out and "if_index=9" in out
    edited = int(out.split()[1].lstrip("#"))
    shown = json.loads(site.cli(capsys, "show", str(edited), "--format", "json")[1])
    assert shown["requester"] == "uid:1001:olga" and shown["parameters"]["if_index"] == 9

    # ...but not approve or reject: the role check applies (exit 77), nothing is recorded.
    for argv in (("approve", str(medium)), ("reject", str(medium), "--reason", "noise")):
        status, _, err = site.cli(capsys, *argv)
        assert status == 77 and "approver" in err, argv
    assert site.audit("suggestion.approve") == []

    # An approver may approve and reject; the audit log names the daemon-authenticated principal.
    site.caller = ABE
    status, out, _ = site.cli(capsys, "approve", str(medium), "--comment", "ok")
    assert status == 0 and f"suggestion #{medium} approved (1/1)" in out
    status, out, _ = site.cli(capsys, "reject", str(edited), "--reason", "false positive")
    assert status == 0 and out == f"suggestion #{edited} rejected\n"
    assert site.audit("suggestion.approve") == [("uid:1002:abe", f"suggestion:{medium}")]
    status, out, _ = site.cli(capsys, "show", str(edited))
    assert "decided by: uid:1002:abe: false positive" in out


def test_local_bypasses_a_running_daemon(site: Site, daemon: Callable[[], None],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    medium, _ = seed(site)
    site.caller = NOBODY
    daemon()
    status, _, err = site.cli(capsys, "list")
    assert status == 77 and "no Watchstander role" in err
    status, _, err = site.cli(capsys, "approve", str(medium))
    assert status == 77
    # --local reads in-process with no role check (forensics on a copy of the store); it never decides.
    assert site.cli(capsys, "list", "--local")[0] == 0
    status, _, err = site.cli(capsys, "approve", str(medium), "--local")
    assert status == 77 and "--local is read-only" in err
    assert site.audit("suggestion.approve") == []


def test_errors_keep_their_type_and_exit_status_over_the_socket(
        site: Site, daemon: Callable[[], None], capsys: pytest.CaptureFixture[str]) -> None:
    medium, high = seed(site)
    now = system_clock()
    stale = seed(site, lambda: now - timedelta(hours=5), "198.51.100.7")[0]  # its 4 h TTL has passed
    site.caller = replace(ABE, roles=frozenset({"operator", "approver", "viewer"}))
    daemon()
    # Same exit status as in-process, for each kind of refusal.
    cases = [
        (("show", "999"), 5),
        (("approve", str(stale)), 7),
        (("reject", str(medium), "--reason", "  "), 4),
        (("edit", str(medium), "--param", "address=10.0.0.9"), 10),
        (("list", "--incident", "0"), 4),
    ]
    for argv, expected in cases:
        remote, local = site.cli(capsys, *argv), site.cli(capsys, *argv, "--local")
        if argv[0] in ("approve", "reject", "edit") and expected != 4:  # --local reads only
            assert (remote[0], local[0]) == (expected, 77), argv  # (a malformed argument is exit 4 first)
            continue
        assert (remote[0], local[0]) == (expected, expected), argv
        assert _messages(remote[2]) == _messages(local[2]), argv  # the same message too
    # Two-person integrity over the socket: the same person counts once (exit 8), a second one approves.
    assert site.cli(capsys, "approve", str(high))[0] == 0
    status, _, err = site.cli(capsys, "approve", str(high))
    assert status == 8 and "already approved" in err
    site.caller = replace(site.caller, uid=1004, username="carla")
    status, out, _ = site.cli(capsys, "approve", str(high))
    assert status == 0 and "approved (2/2)" in out
    status, _, _ = site.cli(capsys, "approve", str(high), "--local")
    assert status == 77

    # The daemon's failure comes back as the review error itself, details included.
    ctx = Context(config_path=site.config)
    try:
        with pytest.raises(SuggestionExpired) as raised:
            cli_suggestions.review(ctx, "suggestions.approve", {"id": stale})
    finally:
        ctx.close()
    assert (raised.value.suggestion_id, raised.value.state, raised.value.exit_status) == (stale, "expired", 7)
    assert isinstance(raised.value.__cause__, RemoteError)


def test_no_daemon_runs_in_process_as_the_os_user(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    medium, high = seed(site)
    site.caller = NOBODY  # would be refused everything, were a daemon asked
    assert not site.socket.exists()
    status, out, _ = site.cli(capsys, "list")
    assert status == 0 and "block-address-nftables" in out
    status, out, _ = site.cli(capsys, "edit", str(high), "--param", "if_index=9")
    assert status == 0
    edited = int(out.split()[1].lstrip("#"))
    assert site.cli(capsys, "approve", str(medium))[0] == 0
    assert site.cli(capsys, "reject", str(edited), "--reason", "no")[0] == 0
    assert site.audit("suggestion.approve") == [(local_identity(), f"suggestion:{medium}")]


def test_a_stale_socket_file_falls_back_in_process(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    medium, _ = seed(site)
    site.socket.parent.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(site.socket))  # bound, never listening, closed: what a killed daemon leaves
    dead.close()
    assert site.socket.is_socket()
    status, out, _ = site.cli(capsys, "approve", str(medium))
    assert status == 0 and "approved (1/1)" in out
    assert site.audit("suggestion.approve") == [(local_identity(), f"suggestion:{medium}")]


def test_commands_map_to_the_declared_methods_and_error_codes() -> None:
    # Every suggestions command maps to a suggestions.* control method with a declared role.
    from watchstander.agent.control.review_methods import REVIEW_METHODS

    roles: dict[str, Role] = {"list": "viewer", "show": "viewer", "approve": "approver", "reject": "approver",
                              "edit": "operator"}
    assert {f"suggestions.{k}": v for k, v in roles.items()} == REVIEW_METHODS
    assert set(cli_suggestions.REVIEW_ERRORS) >= {"suggestion_expired", "suggestion_not_found",
                                                  "parameters_refused", "duplicate_approver"}


def _messages(err: str) -> list[str]:
    """What the command said on stderr, without log lines (the in-process daemon's own share stderr here)."""
    return [line for line in err.splitlines() if not line.startswith(("DEBUG ", "INFO ", "WARNING "))]

