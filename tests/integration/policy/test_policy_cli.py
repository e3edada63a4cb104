"""`watchstander suggestions ...` through a test-local argparse tree, on a real SQLite file.

No daemon answers on the configured socket, so every command runs in-process as the test's chosen
identity (tests/integration/policy/test_suggestions_daemon.py covers the daemon side).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.cli import suggestions as cli_suggestions
from watchstander.agent.cli.context import Context
from watchstander.agent.cli.main import common_parent
from watchstander.agent.errors import WatchstanderError
from watchstander.agent.models import Incident, Provenance, RecommendedAction, TriageVerdict
from watchstander.agent.store.approvals import ApprovalStore
from watchstander.playbooks import load_library

pytestmark = pytest.mark.integration



@dataclass
class As(Context):
    """A context whose identity a test chooses (the real one is the invoking OS user)."""

    who: str = "uid:1001:alice"

    @property
    def identity(self) -> str:  # type: ignore[override]
        return self.who


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="watchstander", parents=[common_parent(suppress=False)])
    sub = parser.add_subparsers(dest="command", required=True)
    cli_suggestions.register(sub, common_parent())
    return parser


@pytest.fixture
def no_daemon() -> Iterator[Path]:
    """A [control] socket path (short enough for sun_path) where no daemon listens."""
    folder = Path(tempfile.mkdtemp(prefix="wsn", dir="/tmp"))
    yield folder / "control.sock"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def run(config_file: Any, clock: Any, capsys: pytest.CaptureFixture[str], no_daemon: Path,
        cli_policy_toml: str) -> Any:
    """Run one command as `who`; returns (exit status, stdout, stderr) like the real main()."""
    path: Path = config_file(f'{cli_policy_toml}\n[control]\nsocket = "{no_daemon}"\n')

    def go(*argv: str, who: str = "uid:1001:alice") -> tuple[int, str, str]:
        args = _parser().parse_args(["--config", str(path), *argv])
        ctx = As(config_path=args.config, clock=clock, who=who)
        try:
            status = args.handler(args, ctx)
        except WatchstanderError as err:
            print(f"error: {err}", file=__import__("sys").stderr)
            status = err.exit_status
        finally:
            ctx.close()
        out = capsys.readouterr()
        return status, out.out, out.err

    go.path = path  # type: ignore[attr-defined]
    go.clock = clock  # type: ignore[attr-defined]
    return go


@pytest.fixture
def seeded(run: Any) -> list[int]:
    """Approve the shipped playbooks and create two suggestions (medium and high risk)."""
    ctx = As(config_path=run.path, clock=run.clock)
    try:
        approvals = ApprovalStore(ctx.store, ctx.audit, ctx.clock)
        for playbook in load_library():
            approvals.approve_with(playbook, ("uid:0:root", "uid:65534:nobody"))
        queue = cli_suggestions.build_queue(ctx)
        verdict = TriageVerdict(
            severity="high", confidence=0.9, disposition="true_positive", summary="s", rationale="r",
            recommended_actions=(
                RecommendedAction(playbook="block-address-nftables", parameters={"address": "203.0.113.9"},
                                  justification="stop the guessing"),
                RecommendedAction(playbook="switch-port-shutdown", parameters={"if_index": 7}),
            ),
            provenance=Provenance(analyst="baseline", analyst_version="t"))
        out = queue.review(Incident("fp", "203.0.113.9", "t", "high", 0, 0, id=1), verdict, actor="test")
        return [s.id for s in out.created]
    finally:
        ctx.close()


def test_list_and_show(run: Any, seeded: list[int]) -> None:
    status, out, _ = run("suggestions", "list")
    assert status == 0 and "block-address-nftables" in out and "0/2" in out
    status, out, _ = run("suggestions", "list", "--state", "pending", "--format", "json")
    data = json.loads(out)
    assert status == 0 and [s["id"] for s in data["suggestions"]] == sorted(seeded, reverse=True)
    status, out, _ = run("suggestions", "show", str(seeded[0]))
    assert status == 0 and "address = \"203.0.113.9\"" in out and "stop the guessing" in out
    status, out, _ = run("suggestions", "show", str(seeded[0]), "--format", "json")
    assert json.loads(out)["params_sha256"]


def test_two_person_rule_through_the_cli(run: Any, seeded: list[int]) -> None:
    high = str(seeded[1])
    status, out, _ = run("suggestions", "approve", high, "--comment", "port 7 is the attacker's")
    assert status == 0 and "another person" in out
    status, _, err = run("suggestions", "approve", high)
    assert status == 8 and "already approved" in err
    status, out, _ = run("suggestions", "approve", high, who="uid:1002:bob")
    assert status == 0 and "approved (2/2)" in out
    status, _, err = run("suggestions", "approve", high, who="uid:1003:carol")
    assert status == 6 and "already approved" in err


def test_reject_edit_and_their_errors(run: Any, seeded: list[int]) -> None:
    medium = str(seeded[0])
    status, out, _ = run("suggestions", "edit", medium, "--param", "minutes=30", "--comment", "shorter")
    assert status == 0
    new_id = int(out.split()[1].lstrip("#"))
    status, _, err = run("suggestions", "approve", medium, who="uid:1002:bob")
    assert status == 6 and f"#{new_id}" in err
    status, _, err = run("suggestions", "approve", str(new_id))  # alice edited it
    assert status == 8
    status, _, err = run("suggestions", "edit", str(new_id), "--param", "address=10.0.0.1;id", who="uid:1002:bob")
    assert status == 10 and "bad_parameter:address" in err
    status, _, err = run("suggestions", "edit", str(new_id), "--param", "address=10.0.0.9", who="uid:1002:bob")
    assert status == 10 and "protected_target:10.0.0.9" in err
    status, _, _ = run("suggestions", "reject", str(new_id), "--reason", "false positive", who="uid:1002:bob")
    assert status == 0
    status, _, _ = run("suggestions", "reject", str(new_id), "--reason", "again", who="uid:1002:bob")
    assert status == 6
    status, _, _ = run("suggestions", "show", "999")
    assert status == 5
    with pytest.raises(SystemExit):
        run("suggestions", "reject", str(new_id))  # --reason is required


def test_expired_and_tampered(run: Any, seeded: list[int], tmp_path: Path) -> None:
    import sqlite3

    con = sqlite3.connect(tmp_path / "w.db")
    with con:
        con.execute("UPDATE suggestions SET params_json = ? WHERE id = ?",
                    ('{"address":"198.51.100.1","firewall":"fw1","minutes":60}', seeded[0]))
    con.close()
    status, _, err = run("suggestions", "approve", str(seeded[0]))
    assert status == 9 and "hash" in err
    run.clock.advance(hours=5)
    status, _, err = run("suggestions", "approve", str(seeded[1]))
    assert status == 7 and "expired" in err
    status, out, _ = run("suggestions", "list", "--state", "expired", "--format", "json")
    assert [s["id"] for s in json.loads(out)["suggestions"]] == [seeded[1], seeded[0]]


def test_printable_escapes_terminal_controls() -> None:
    shown = cli_suggestions.printable("ok\x1b[2J\u202eevil\u2028x")
    assert "\x1b" not in shown and "\u202e" not in shown and "\u2028" not in shown
    assert shown.startswith("ok\\x1b[2J")
