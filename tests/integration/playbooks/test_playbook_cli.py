"""`watchstander playbooks ...` end to end through cli.main with a config in tmp_path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from watchstander.agent.cli.main import main
from watchstander.agent.errors import EXIT_INPUT, EXIT_NOT_FOUND, EXIT_OK
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.schema import open_store
from watchstander.playbooks import library_dir

pytestmark = pytest.mark.integration

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the CLI with a config whose store is a SQLite file in tmp_path."""
    config = tmp_path / "watchstander.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n')

    def invoke(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(["--config", str(config), "playbooks", *argv])
        out, err = capsys.readouterr()
        return status, out, err

    return invoke


def statuses(run: Run, *extra: str) -> dict[str, str]:
    status, out, _ = run("list", "--format", "json", *extra)
    assert status == EXIT_OK
    return {row["id"]: row["status"] for row in json.loads(out)["playbooks"]}


def test_validate_shipped_library(run: Run) -> None:
    status, out, err = run("validate", str(library_dir()))
    assert status == EXIT_OK, err
    assert out.count("ok ") >= 7


def test_validate_reports_file_line_key(run: Run, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((library_dir() / "notify-webhook.yaml").read_text().replace("notify.webhook", "notify.pager"))
    status, out, err = run("validate", str(library_dir() / "wait-does-not-exist.yaml"), str(broken))
    assert status == EXIT_INPUT
    assert f"INVALID {broken}" in out
    assert f"{broken}:20: steps[0].action: unknown action 'notify.pager'" in err
    assert "cannot read" in err


def test_validate_json(run: Run, tmp_path: Path) -> None:
    broken = tmp_path / "dup.yaml"
    broken.write_text("id: a\nid: b\n")
    status, out, _ = run("validate", "--format", "json", str(broken))
    assert status == EXIT_INPUT
    (result,) = json.loads(out)
    assert result["problems"][0] == {"file": str(broken), "line": 2, "key": "id",
                                      "message": "duplicate key (first at line 1)"}


def test_list_approve_edit_reapprove(run: Run, tmp_path: Path, copy_shipped: Callable[[str], Path],
                                     edit_one_byte: Callable[[Path], None]) -> None:
    assert set(statuses(run).values()) == {"never approved"}

    # A medium-risk playbook: one approver suffices (high risk needs two: test_definition_two_person.py).
    status, out, err = run("approve", str(library_dir() / "capture-incident-traffic.yaml"), "--comment", "CAB-42")
    assert status == EXIT_OK, err
    assert "approved capture-incident-traffic v1 sha256 " in out and " by uid:" in out
    assert statuses(run)["capture-incident-traffic"] == "approved"
    status, out, _ = run("approve", "capture-incident-traffic")
    assert status == EXIT_OK and "already approved" in out

    # A playbook in an extra folder: approve by path, edit, see it disabled, re-approve.
    custom = copy_shipped("notify-webhook").parent
    renamed = custom / "notify-webhook.yaml"
    renamed.write_text(renamed.read_text().replace("id: notify-webhook", "id: notify-webhook-local"))
    assert statuses(run, "--dir", str(custom))["notify-webhook-local"] == "never approved"
    assert run("approve", str(renamed), "--dir", str(custom))[0] == EXIT_OK
    assert statuses(run, "--dir", str(custom))["notify-webhook-local"] == "approved"
    edit_one_byte(renamed)
    assert statuses(run, "--dir", str(custom))["notify-webhook-local"] == "changed since approval"
    status, out, err = run("approve", "notify-webhook-local", "--dir", str(custom))
    assert status == EXIT_OK and "no longer approved" in err
    assert statuses(run, "--dir", str(custom))["notify-webhook-local"] == "approved"

    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        log = AuditLog(store)
        approvals = [r for r in log.records() if r.action == "playbook.approve"]
        assert [r.subject for r in approvals] == ["playbook:capture-incident-traffic",
                                                  "playbook:notify-webhook-local", "playbook:notify-webhook-local"]
        assert approvals[0].data["comment"] == "CAB-42" and approvals[0].actor.startswith("uid:")
        assert log.verify().ok
    finally:
        store.close()


def test_approve_refuses_a_file_shadowing_a_catalogue_id(run: Run, copy_shipped: Callable[[str], Path]) -> None:
    shadow = copy_shipped("block-address-nftables")
    shadow.write_text(shadow.read_text().replace("version: 1", "version: 2"))
    status, _, err = run("approve", str(shadow))
    assert status == EXIT_INPUT
    assert "is provided by" in err
    assert statuses(run)["block-address-nftables"] == "never approved"


def test_approve_invalid_file_fails(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\n")
    status, _, err = run("approve", str(bad))
    assert status == EXIT_INPUT
    assert f"{bad}:1: version: Field required" in err


def test_show_by_id_and_path(run: Run) -> None:
    status, out, _ = run("show", "block-address-ios-acl")
    assert status == EXIT_OK
    assert "block-address-ios-acl v1" in out and "never approved" in out and "rollback:" in out
    status, out, _ = run("show", str(library_dir() / "capture-incident-traffic.yaml"), "--format", "json")
    data = json.loads(out)
    assert data["playbook"]["id"] == "capture-incident-traffic" and len(data["content_hash"]) == 64
    assert run("show", "no-such-playbook")[0] == EXIT_NOT_FOUND


def test_revoke(run: Run) -> None:
    assert run("revoke", "notify-webhook")[0] == EXIT_NOT_FOUND
    assert run("approve", "notify-webhook")[0] == EXIT_OK
    status, out, _ = run("revoke", "notify-webhook", "--reason", "retired")
    assert status == EXIT_OK and "revoked #1 notify-webhook" in out
    assert statuses(run)["notify-webhook"] == "revoked"


def test_list_table_reports_broken_files(run: Run, tmp_path: Path) -> None:
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "bad.yaml").write_text("id: [\n")
    status, out, err = run("list", "--dir", str(folder))
    assert status == EXIT_OK
    assert out.splitlines()[0].split() == ["ID", "VER", "RISK", "STATUS", "TITLE"]
    assert f"{folder / 'bad.yaml'}:" in err
