"""Approving playbook definitions: the admin role through the daemon, two distinct people for high risk."""

from __future__ import annotations

import asyncio
import grp
import json
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.app.wiring import App
from watchstander.agent.cli.main import main
from watchstander.agent.clock import system_clock
from watchstander.agent.config.load import load_config
from watchstander.agent.control.client import ControlClient
from watchstander.agent.control.errors import InvalidParams, RemoteError
from watchstander.agent.control.identity import Identity, PeerCredentials
from watchstander.agent.control.wiring import build_control_server
from watchstander.agent.errors import EXIT_OK, Exit
from watchstander.agent.store.approvals import ApprovalStatus, ApprovalStore, DefinitionApprovalRefused
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.schema import open_store
from watchstander.playbooks import library_dir, load_playbook

pytestmark = pytest.mark.integration

ALICE, BOB = "uid:1001:alice", "uid:1002:bob"
ADA = Identity(1001, "ada", frozenset({"wsadmin"}), frozenset({"admin", "approver", "operator", "viewer",
                                                                "compliance"}))
ALAN = replace(ADA, uid=1004, username="alan")
ABE = Identity(1002, "abe", frozenset({"wsappr"}), frozenset({"approver", "viewer"}))
VERA = Identity(1003, "vera", frozenset({"wsview"}), frozenset({"viewer"}))


# ---------------------------------------------------------------- the store


def test_high_risk_needs_two_distinct_people(approvals: ApprovalStore, audit: AuditLog,
                                             copy_shipped: Callable[[str], Path],
                                             edit_one_byte: Callable[[Path], None]) -> None:
    path = copy_shipped("switch-port-shutdown")
    playbook = load_playbook(path)
    assert playbook.risk == "high"
    first = approvals.approve(playbook, ALICE, "CAB-42")
    assert not first.complete and first.approvers == (ALICE,) and first.required == 2
    assert not approvals.is_approved(playbook)
    assert approvals.status(playbook) is ApprovalStatus.PENDING
    assert approvals.current(playbook) is None and approvals.pending(playbook) == first
    # The first approver cannot count twice, under any name their uid claims.
    for again in (ALICE, "uid:1001:mallory", "uid:1001"):
        with pytest.raises(DefinitionApprovalRefused) as refused:
            approvals.approve(playbook, again)
        assert refused.value.exit_status == Exit.APPROVAL_REFUSED
    assert not approvals.is_approved(playbook)
    done = approvals.approve(playbook, BOB, "second look")
    assert done.complete and done.approvers == (ALICE, BOB) and done.id == first.id
    assert approvals.is_approved(playbook) and approvals.status(playbook) is ApprovalStatus.APPROVED
    assert approvals.approve(playbook, "uid:1005:carol") == done  # complete: nothing more recorded
    records = [r for r in audit.records() if r.action == "playbook.approve"]
    assert [(r.actor, r.data["count"], r.data["required"]) for r in records] == [(ALICE, 1, 2), (BOB, 2, 2)]
    assert audit.verify().ok

    # Changed content starts over, and needs two people again.
    edit_one_byte(path)
    edited = load_playbook(path)
    approvals.approve(edited, BOB)
    assert not approvals.is_approved(edited) and not approvals.is_approved(playbook)
    approvals.approve(edited, ALICE)
    assert approvals.is_approved(edited)


def test_low_risk_needs_one(approvals: ApprovalStore, copy_shipped: Callable[[str], Path]) -> None:
    playbook = load_playbook(copy_shipped("notify-webhook"))
    approval = approvals.approve(playbook, ALICE)
    assert approval.complete and approvals.is_approved(playbook)


def test_a_pending_approval_is_bound_to_its_content(approvals: ApprovalStore, copy_shipped: Callable[[str], Path],
                                                    edit_one_byte: Callable[[Path], None]) -> None:
    path = copy_shipped("switch-port-shutdown")
    original = load_playbook(path)
    approvals.approve(original, ALICE)
    edit_one_byte(path)
    edited = load_playbook(path)
    approvals.approve(edited, BOB)  # BOB's approval is of other bytes: it does not complete ALICE's
    assert not approvals.is_approved(original) and not approvals.is_approved(edited)


def test_approve_with_distinct_principals(approvals: ApprovalStore, copy_shipped: Callable[[str], Path]) -> None:
    playbook = load_playbook(copy_shipped("switch-port-shutdown"))
    approval = approvals.approve_with(playbook, ("demo:analyst", "demo:lead"), "demo")
    assert approval.complete and approvals.is_approved(playbook)
    other = load_playbook(copy_shipped("block-address-nftables"))
    with pytest.raises(DefinitionApprovalRefused):
        approvals.approve_with(other, (ALICE, "uid:1001:again"), "one person twice")


def test_a_single_approval_from_before_the_upgrade_does_not_count_for_high_risk(
        tmp_path: Path, copy_shipped: Callable[[str], Path]) -> None:
    db = tmp_path / "old.db"
    playbook = load_playbook(copy_shipped("switch-port-shutdown"))
    store = open_store(f"sqlite:///{db}")
    ApprovalStore(store, AuditLog(store), system_clock).approve_with(playbook, (ALICE, BOB))
    store.close()
    con = sqlite3.connect(db)  # what a version-1 store holds: the approval row, nobody else on it
    with con:
        con.execute("DELETE FROM playbook_approval_signers WHERE approver = ?", (BOB,))
    con.close()
    store = open_store(f"sqlite:///{db}")
    try:
        assert not ApprovalStore(store, AuditLog(store), system_clock).is_approved(playbook)
    finally:
        store.close()


V1_TABLE = """CREATE TABLE playbook_approvals (id INTEGER PRIMARY KEY AUTOINCREMENT, playbook_id VARCHAR(64) NOT NULL,
    version INTEGER NOT NULL, content_hash VARCHAR(64) NOT NULL, source VARCHAR(1000) NOT NULL,
    approver VARCHAR(200) NOT NULL, approved_at VARCHAR(40) NOT NULL, comment TEXT NOT NULL,
    revoked_at VARCHAR(40), revoked_by VARCHAR(200), revoke_reason TEXT)"""


def test_migrating_a_version_1_store_keeps_each_approver(tmp_path: Path, copy_shipped: Callable[[str], Path]) -> None:
    db = tmp_path / "v1.db"
    open_store(f"sqlite:///{db}").close()
    high = load_playbook(copy_shipped("switch-port-shutdown"))
    low = load_playbook(copy_shipped("notify-webhook"))
    con = sqlite3.connect(db)
    with con:  # back to the shape version 1 of the component left
        con.execute("DROP TABLE playbook_approval_signers")
        con.execute("DROP TABLE playbook_approvals")
        con.execute(V1_TABLE)
        con.execute("UPDATE schema_versions SET version = 1 WHERE component = 'playbooks'")
        for p in (high, low):
            con.execute("INSERT INTO playbook_approvals (playbook_id, version, content_hash, source, approver, "
                        "approved_at, comment) VALUES (?, 1, ?, ?, ?, '2026-01-01T00:00:00+00:00', '')",
                        (p.id, p.content_hash, p.source, ALICE))
    con.close()
    store = open_store(f"sqlite:///{db}")
    try:
        approvals = ApprovalStore(store, AuditLog(store), system_clock)
        assert approvals.is_approved(low) and approvals.current(low).approvers == (ALICE,)  # type: ignore[union-attr]
        assert not approvals.is_approved(high) and approvals.status(high) is ApprovalStatus.PENDING
        with pytest.raises(DefinitionApprovalRefused):
            approvals.approve(high, ALICE)
        assert approvals.approve(high, BOB).complete
    finally:
        store.close()


# ---------------------------------------------------------------- the CLI without a daemon


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """`watchstander playbooks ARGV` in-process, with a config whose socket nobody serves."""
    config = tmp_path / "watchstander.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n'
                      f'[control]\nsocket = "{tmp_path / "absent.sock"}"\n')

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(["--config", str(config), "playbooks", *argv])
        out = capsys.readouterr()
        return status, out.out, out.err

    return run


def test_in_process_one_uid_cannot_approve_a_high_risk_definition_alone(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status, out, err = cli("approve", "switch-port-shutdown", "--comment", "CAB-42")
    assert status == EXIT_OK, err
    assert "1 of 2" in out and "another person" in out
    assert _status(cli, "switch-port-shutdown") == "awaiting another approver"
    for user in ("someone-else", "root2"):
        monkeypatch.setenv("USER", user)
        monkeypatch.setenv("LOGNAME", user)
        status, _, err = cli("approve", "switch-port-shutdown")
        assert status == Exit.APPROVAL_REFUSED and "already approved" in err
    assert _status(cli, "switch-port-shutdown") == "awaiting another approver"
    status, out, _ = cli("approve", "notify-webhook")
    assert status == EXIT_OK and _status(cli, "notify-webhook") == "approved"


def _status(cli: Callable[..., tuple[int, str, str]], playbook_id: str) -> str:
    status, out, _ = cli("list", "--format", "json")
    assert status == EXIT_OK
    return str({r["id"]: r["status"] for r in json.loads(out)["playbooks"]}[playbook_id])


# ---------------------------------------------------------------- through the daemon


@dataclass
class Site:
    """A config, its store, and who the injected resolver says is calling."""

    config: Path
    db: Path
    caller: Identity = ADA

    def resolve(self, cred: PeerCredentials) -> Identity:
        """The kernel's pid is real; the account is the one the test chose."""
        return replace(self.caller, pid=cred.pid)

    def approvers(self, playbook_id: str) -> list[str]:
        con = sqlite3.connect(self.db)
        try:
            return [r[0] for r in con.execute(
                "SELECT s.approver FROM playbook_approval_signers s JOIN playbook_approvals a "
                "ON a.id = s.approval_id WHERE a.playbook_id = ? ORDER BY s.id", (playbook_id,))]
        finally:
            con.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A site whose [control] socket lives under /tmp, served by the daemon's real control server."""
    short = Path(tempfile.mkdtemp(prefix="wsd", dir="/tmp"))
    db = tmp_path / "w.db"
    group = grp.getgrgid(os.getgid()).gr_name
    config = tmp_path / "watchstander.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n[control]\nsocket = "{short / "c.sock"}"\n'
                      f'socket_group = "{group}"\n', encoding="utf-8")
    site = Site(config, db)
    loaded = load_config(config)
    store = open_store(loaded.store.resolved_url())
    server = build_control_server(App(loaded, store, system_clock), resolver=site.resolve)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="playbooks-daemon", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield site
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
    store.close()
    shutil.rmtree(short, ignore_errors=True)


def run(site: Site, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`watchstander playbooks ARGV` through the real main()."""
    capsys.readouterr()
    status = main(["--config", str(site.config), "playbooks", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_through_the_daemon_admins_only_and_two_for_high_risk(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    for someone in (VERA, ABE):  # a viewer and an approver of runs may not approve definitions
        site.caller = someone
        status, _, err = run(site, capsys, "approve", "switch-port-shutdown")
        assert status == Exit.NOPERM and "admin" in err
    assert site.approvers("switch-port-shutdown") == []

    site.caller = ADA
    status, out, err = run(site, capsys, "approve", "switch-port-shutdown", "--comment", "CAB-42")
    assert status == EXIT_OK, err
    assert "1 of 2" in out
    status, _, err = run(site, capsys, "approve", "switch-port-shutdown")
    assert status == Exit.APPROVAL_REFUSED and "already approved" in err
    site.caller = ALAN
    status, out, err = run(site, capsys, "approve", str(library_dir() / "switch-port-shutdown.yaml"))
    assert status == EXIT_OK, err
    assert "approved switch-port-shutdown" in out and "2 of 2" in out
    assert site.approvers("switch-port-shutdown") == ["uid:1001:ada", "uid:1004:alan"]
    store = open_store(f"sqlite:///{site.db}")
    try:
        approvals = ApprovalStore(store, AuditLog(store), system_clock)
        assert approvals.is_approved(load_playbook(library_dir() / "switch-port-shutdown.yaml"))
    finally:
        store.close()

    status, out, _ = run(site, capsys, "approve", "notify-webhook")
    assert status == EXIT_OK and "1 of 1" in out and site.approvers("notify-webhook") == ["uid:1004:alan"]


def test_the_daemon_approves_only_the_content_the_admin_looked_at(site: Site) -> None:
    socket = load_config(site.config).control.socket
    with pytest.raises(RemoteError) as changed:
        ControlClient(socket).call("playbooks.approve", {"id": "notify-webhook", "content_hash": "0" * 64})
    assert changed.value.exit_status == Exit.INPUT
    with pytest.raises(InvalidParams):
        ControlClient(socket).call("playbooks.approve", {"id": "notify-webhook"})
    with pytest.raises(RemoteError) as unknown:
        ControlClient(socket).call("playbooks.approve", {"id": "no-such", "content_hash": "0" * 64})
    assert unknown.value.exit_status == Exit.NOT_FOUND
    assert site.approvers("notify-webhook") == []


@pytest.mark.parametrize("people", [(ALICE, BOB), (ALICE, "uid:1001:alias")])
def test_racing_approvals_count_each_person_once(tmp_path: Path, copy_shipped: Callable[[str], Path],
                                                 people: tuple[str, str]) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    playbook = load_playbook(copy_shipped("switch-port-shutdown"))
    stores = [open_store(url) for _ in people]
    gate = threading.Barrier(len(people))
    outcomes: list[object] = []

    def approve(store: Any, who: str) -> None:
        gate.wait(5)
        try:
            outcomes.append(ApprovalStore(store, AuditLog(store), system_clock).approve(playbook, who))
        except DefinitionApprovalRefused as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=approve, args=(s, who)) for s, who in zip(stores, people)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    try:
        approvals = ApprovalStore(stores[0], AuditLog(stores[0]), system_clock)
        if people[1] == BOB:
            assert approvals.is_approved(playbook) and len(approvals.approvals(playbook.id)) == 1
        else:
            assert not approvals.is_approved(playbook)
            assert sum(isinstance(o, DefinitionApprovalRefused) for o in outcomes) == 1
    finally:
        for s in stores:
            s.close()
