"""Issue 13, identity and authorization: who acts in-process, what `--local` may do, absurd ids.

Every test runs the real `watchstander` entry point (`main`) or the real review queue on a real
SQLite file. No daemon listens on the configured socket, so commands without `--local` run
in-process as the invoking OS user -- the mode the red team used to approve one suggestion as two
"people" by changing `$LOGNAME`.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from watchstander.agent.cli import suggestions as cli_suggestions
from watchstander.agent.cli.context import Context
from watchstander.agent.cli.main import main
from watchstander.agent.clock import Clock, system_clock
from watchstander.agent.errors import Exit
from watchstander.agent.models import Incident, Provenance, RecommendedAction, TriageVerdict
from watchstander.agent.policy.errors import DuplicateApprover, RequesterCannotApprove, SuggestionNotFound
from watchstander.agent.store.approvals import ApprovalStore
from watchstander.playbooks import load_library

pytestmark = pytest.mark.integration

HUGE = str(2**70)


def _real_identity() -> str:
    uid = os.getuid()
    return f"uid:{uid}:{pwd.getpwuid(uid).pw_name}"


def seed(config: Path, clock: Clock = system_clock) -> tuple[int, int]:
    """Approve the shipped playbooks; suggest a medium-risk block and a high-risk port shutdown."""
    ctx = Context(config_path=config, clock=clock)
    try:
        approvals = ApprovalStore(ctx.store, ctx.audit, ctx.clock)
        for playbook in load_library():
            approvals.approve(playbook, "uid:0:root")
            if not approvals.is_approved(playbook):  # a definition that needs a second person
                approvals.approve(playbook, "uid:1:daemon")
        verdict = TriageVerdict(
            severity="high", confidence=0.9, disposition="true_positive", summary="s", rationale="r",
            recommended_actions=(
                RecommendedAction(playbook="block-address-nftables", parameters={"address": "203.0.113.9"},
                                  justification="stop the guessing"),
                RecommendedAction(playbook="switch-port-shutdown", parameters={"if_index": 7}),
            ),
            provenance=Provenance(analyst="baseline", analyst_version="t"))
        out = cli_suggestions.build_queue(ctx).review(
            Incident("fp", "203.0.113.9", "t", "high", 0, 0, id=1), verdict, actor="test")
        medium, high = (s.id for s in out.created)
        return medium, high
    finally:
        ctx.close()


@pytest.fixture
def site(cli_policy_toml: str) -> Iterator[Path]:
    """A short folder under /tmp (a socket path fits sun_path) holding the config; no daemon listens."""
    folder = Path(tempfile.mkdtemp(prefix="wsid", dir="/tmp"))
    config = folder / "watchstander.toml"
    config.write_text(textwrap.dedent(f"""\
        [logging]
        level = "WARNING"
        [store]
        url = "sqlite:///{folder / 'store' / 'w.db'}"
        [control]
        socket = "{folder / 'control.sock'}"
        """) + cli_policy_toml, encoding="utf-8")
    yield config
    shutil.rmtree(folder, ignore_errors=True)


def cli(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    """Run `watchstander --config CONFIG suggestions ARGV...`; returns (status, stdout, stderr)."""
    status = main(["--config", str(config), "suggestions", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def audit_actions(config: Path, action: str) -> list[tuple[str, str]]:
    """(actor, subject) of every audit record with this action, read straight from the file."""
    con = sqlite3.connect(config.parent / "store" / "w.db")
    try:
        return [(r[0], r[1]) for r in con.execute(
            "SELECT actor, subject FROM audit_log WHERE action = ? ORDER BY seq", (action,))]
    finally:
        con.close()


# ---------------------------------------------------------------------------- who acts in-process


def test_identity_is_the_real_uid_whatever_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("mallory", "root", "uid:1:daemon"):
        for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
            monkeypatch.setenv(var, name)
        assert Context().identity == _real_identity()


def test_one_uid_approving_under_two_names_counts_once(
        site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _, high = seed(site)
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.setenv("USER", "alice")
    status, out, _ = cli(capsys, site, "approve", str(high))
    assert status == 0 and "another person must approve it too" in out
    monkeypatch.setenv("LOGNAME", "bob")
    monkeypatch.setenv("USER", "bob")
    status, _, err = cli(capsys, site, "approve", str(high))
    assert status == Exit.APPROVAL_REFUSED and "already approved" in err
    assert audit_actions(site, "suggestion.approve") == [(_real_identity(), f"suggestion:{high}")]
    shown = json.loads(cli(capsys, site, "show", str(high), "--format", "json")[1])
    assert shown["state"] == "pending" and [a["approver"] for a in shown["approvals"]] == [_real_identity()]


def test_the_queue_compares_approvers_by_uid(site: Path) -> None:
    _, high = seed(site)
    ctx = Context(config_path=site)
    try:
        queue = cli_suggestions.build_queue(ctx)
        queue.approve(high, "uid:1001:alice")
        with pytest.raises(DuplicateApprover):
            queue.approve(high, "uid:1001:mallory")
        with pytest.raises(DuplicateApprover):
            queue.approve(high, "uid:1001")
        assert [a.approver for a in queue.get(high).approvals] == ["uid:1001:alice"]
        # Whoever edits a suggestion requested the new one, under any name its uid claims.
        new = queue.edit(high, "uid:1002:bob", {"if_index": 9}, "wrong port")
        with pytest.raises(RequesterCannotApprove):
            queue.approve(new.id, "uid:1002:robert")
        # Different uids are different people (names that are not uids still compare whole).
        queue.approve(new.id, "uid:1003:carol")
        assert queue.approve(new.id, "uid:1004:carol").state == "approved"
    finally:
        ctx.close()


# ---------------------------------------------------------------------------- --local reads only


def test_local_cannot_approve_reject_or_edit(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    medium, high = seed(site)
    for argv in (("approve", str(medium)), ("reject", str(medium), "--reason", "noise"),
                 ("edit", str(high), "--param", "if_index=9")):
        status, out, err = cli(capsys, site, *argv, "--local")
        assert status == Exit.NOPERM and out == "", argv
        assert "--local" in err and "read-only" in err and "Traceback" not in err, argv
    for action in ("suggestion.approve", "suggestion.transition", "suggestion.create"):
        assert [a for a in audit_actions(site, action) if a[0] != "watchstander:triage"] == [], action
    states = {s["id"]: s["state"] for s in json.loads(
        cli(capsys, site, "list", "--local", "--format", "json")[1])["suggestions"]}
    assert states == {medium: "pending", high: "pending"}


def test_local_still_lists_and_shows(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    medium, _ = seed(site)
    status, out, _ = cli(capsys, site, "list", "--local")
    assert status == 0 and "block-address-nftables" in out and "switch-port-shutdown" in out
    status, out, _ = cli(capsys, site, "show", str(medium), "--local")
    assert status == 0 and 'address = "203.0.113.9"' in out


def test_a_read_only_list_shows_due_suggestions_as_expired_without_recording_it(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = system_clock()
    medium, high = seed(site, lambda: now - timedelta(hours=5))  # their 4 h TTL has passed
    db = site.parent / "store" / "w.db"
    before = db.read_bytes()
    for flag in (("--local",), ()):
        listed = json.loads(cli(capsys, site, "list", "--state", "expired", "--format", "json", *flag)[1])
        assert [s["id"] for s in listed["suggestions"]] == [high, medium], flag
        listed = json.loads(cli(capsys, site, "list", "--state", "pending", "--format", "json", *flag)[1])
        assert listed["suggestions"] == [], flag
        status, out, _ = cli(capsys, site, "show", str(medium), *flag)
        assert status == 0 and f"suggestion #{medium}: block-address-nftables [expired]" in out, flag
    assert db.read_bytes() == before  # shown as expired, recorded by the next writer (the sweeper)


# ---------------------------------------------------------------------------- absurd ids


@pytest.mark.parametrize("local", [True, False])
def test_an_id_beyond_any_integer_column_is_not_found(
        site: Path, capsys: pytest.CaptureFixture[str], local: bool) -> None:
    seed(site)
    flag = ("--local",) if local else ()
    for argv in (("show", HUGE), ("show", HUGE, "--format", "json")):
        status, out, err = cli(capsys, site, *argv, *flag)
        assert status == Exit.NOT_FOUND and out == "" and f"no suggestion #{HUGE}" in err, argv
    if not local:
        for argv in (("approve", HUGE), ("reject", HUGE, "--reason", "x"), ("edit", HUGE, "--param", "a=1")):
            status, _, err = cli(capsys, site, *argv)
            assert status == Exit.NOT_FOUND and "Traceback" not in err, argv


def test_the_queue_refuses_absurd_ids_as_not_found(site: Path) -> None:
    seed(site)
    ctx = Context(config_path=site)
    try:
        queue = cli_suggestions.build_queue(ctx)
        for sid in (2**63, 2**70, -(2**70)):
            with pytest.raises(SuggestionNotFound):
                queue.get(sid)
            with pytest.raises(SuggestionNotFound):
                queue.approve(sid, "uid:1001:alice")
    finally:
        ctx.close()


# ---------------------------------------------------------------------------- a user who cannot write


_AS_NOBODY = """
import os, sys
from watchstander.agent.cli.main import main
# Everything the command needs is imported by a first run as root on a scratch copy: the
# interpreter lives under /root, which nobody cannot read once privileges are dropped.
main(["--config", sys.argv[1], "suggestions", "list", "--local"])
main(["--config", sys.argv[1], "incidents", "list"])
main(["--config", sys.argv[1], "audit", "verify", "--local"])
main(["--config", sys.argv[1], "guidance", "status"])
"x".encode("unicode_escape")  # a codec loaded on first use, by error messages
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.stdout.write("=== as nobody ===\\n")
sys.stdout.flush()
sys.exit(main(["--config", sys.argv[2], *sys.argv[3:]]))
"""


@pytest.mark.privileged
def test_read_only_commands_work_for_a_user_who_cannot_write_the_store(site: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")
    medium, high = seed(site)
    folder = site.parent
    scratch = Path(tempfile.mkdtemp(prefix="wsscratch", dir="/tmp"))
    try:
        shutil.copytree(folder / "store", scratch / "store")
        (scratch / "watchstander.toml").write_text(
            site.read_text(encoding="utf-8").replace(str(folder), str(scratch)), encoding="utf-8")
        db = folder / "store" / "w.db"
        before = db.read_bytes()
        db.chmod(0o444)
        site.chmod(0o444)
        (folder / "store").chmod(0o555)
        folder.chmod(0o555)

        def as_nobody(*argv: str) -> tuple[int, str, str]:
            done = subprocess.run([sys.executable, "-c", _AS_NOBODY, str(scratch / "watchstander.toml"), str(site),
                                   *argv], capture_output=True, text=True, timeout=60, cwd="/")
            return done.returncode, done.stdout.split("=== as nobody ===\n", 1)[-1], done.stderr

        status, out, err = as_nobody("suggestions", "list")
        assert status == 0 and "error" not in err, err
        assert "block-address-nftables" in out and "switch-port-shutdown" in out
        status, out, err = as_nobody("suggestions", "list", "--format", "json")
        assert status == 0, err
        assert sorted(s["id"] for s in json.loads(out)["suggestions"]) == [medium, high]
        status, out, err = as_nobody("suggestions", "show", str(medium), "--local")
        assert status == 0, err
        assert f"suggestion #{medium}: block-address-nftables [pending]" in out and "stop the guessing" in out
        status, out, err = as_nobody("incidents", "list")
        assert status == 0 and "Traceback" not in err, err
        status, out, err = as_nobody("audit", "verify", "--local")
        assert status == 0 and out.startswith("ok: "), err
        status, out, err = as_nobody("guidance", "status")
        assert status == 0 and "EO 14409" in out, err
        # ...and a write is still refused, clearly (the file cannot be written), not as a traceback.
        status, _, err = as_nobody("suggestions", "approve", str(high))
        assert status == Exit.STORE and "Traceback" not in err, err
        assert db.read_bytes() == before
        assert sorted(p.name for p in db.parent.iterdir() if p.name.startswith("w.db")) == ["w.db"]
    finally:
        folder.chmod(0o755)
        (folder / "store").chmod(0o755)
        shutil.rmtree(scratch, ignore_errors=True)


def test_edit_reads_through_the_writer(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without `--local` an edit still works in-process (its show and its write use one store)."""
    _, high = seed(site)
    status, out, err = cli(capsys, site, "edit", str(high), "--param", "if_index=9", "--comment", "port 9")
    assert status == 0, err
    assert f"replaces #{high}" in out and "if_index=9" in out
