"""Failure paths of a run on the emulated router: host keys, refused keys, timeouts, failed checks and rollbacks.

Every test runs the agent's own runner over a real SQLite store against the IOS emulator over
real SSH on 127.0.0.1; alerts go to a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support.ios_emulator import BLOCK_ACL
from support.sshkeys import generate_keypair, known_hosts_line

from watchstander.agent.cli.main import main
from watchstander.agent.policy.errors import AlreadyDecided, IllegalTransition, PlaybookChanged
from watchstander.agent.store.runs import Run, runs
from watchstander.playbooks.catalogue import library_dir

pytestmark = pytest.mark.integration

BLOCK = "block-address-ios-acl"
PARAMS = {"router": "edge1", "address": "203.0.113.7", "sequence": 100}
DENY = "100 deny ip host 203.0.113.7 any log"


def run_count(kit: Any) -> int:
    """How many runs the store holds."""
    with kit.store.engine.connect() as conn:
        return len(conn.execute(runs.select()).all())


def suggestion_state(kit: Any, sid: int) -> str:
    """The suggestion's state as the review queue reads it."""
    return str(kit.app.review_queue().get(sid).state)


def step_status(run: Run) -> list[tuple[str, str, str]]:
    """(phase, step, status) of every recorded step."""
    return [(s.phase, s.step_id, s.status) for s in run.steps]


# ------------------------------------------------------------------ host keys and client keys


def test_unknown_host_key_fails_the_pre_check_and_sends_nothing(custom_router_kit) -> None:  # type: ignore[no-untyped-def]
    kit, emulator = custom_router_kit(known_hosts_lines=[])
    sid = kit.approved(BLOCK, PARAMS)
    run = kit.run(sid)
    assert run.state == "failed", run.detail
    assert run.failed_step == "acl-exists"
    assert step_status(run) == [("pre_checks", "acl-exists", "error")]
    assert "edge1" in (run.detail or "") and emulator.host_key_fingerprint in (run.detail or "")
    assert "unknown" in (run.detail or "")
    assert emulator.logins == 0 and emulator.sessions == []
    assert emulator.acl(BLOCK_ACL) == ["10000 permit ip any any"]
    assert suggestion_state(kit, sid) == "failed"
    assert kit.app.audit.verify().ok


def test_changed_host_key_fails_the_pre_check_and_sends_nothing(custom_router_kit, ssh_keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other = generate_keypair(tmp_path / "other", "old_host_key")
    kit, emulator = custom_router_kit(known_hosts_lines=[])
    # The key trusted for exactly this host and port is another one: the device's key changed.
    kit.config.devices[0].ssh.known_hosts.write_text(known_hosts_line("127.0.0.1", emulator.port, other) + "\n")
    sid = kit.approved(BLOCK, PARAMS)
    run = kit.run(sid)
    assert run.state == "failed", run.detail
    assert step_status(run) == [("pre_checks", "acl-exists", "error")]
    detail = run.detail or ""
    assert "edge1" in detail and emulator.host_key_fingerprint in detail and "CHANGED" in detail
    assert emulator.logins == 0 and emulator.sessions == []
    assert kit.app.audit.verify().ok


def test_refused_client_key_fails_with_authentication_failed(custom_router_kit, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stranger = generate_keypair(tmp_path / "stranger", "someone_else")
    kit, emulator = custom_router_kit(authorized=[stranger])
    sid = kit.approved(BLOCK, PARAMS)
    run = kit.run(sid)
    assert run.state == "failed", run.detail
    assert step_status(run) == [("pre_checks", "acl-exists", "error")]
    detail = run.detail or ""
    assert "edge1" in detail and "refused the client key" in detail
    assert emulator.logins == 0 and emulator.sessions == []
    assert kit.app.audit.verify().ok


# ------------------------------------------------------------------ timeouts, failed checks, failed rollbacks


def test_step_timing_out_is_timeout_and_the_rollback_runs(custom_router_kit, write_site_playbook,  # type: ignore[no-untyped-def]
                                                          tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_site_playbook(site, "test-slow-block", step_timeout_s=1)
    # Every line takes 0.35 s: the 1 s step cannot get through its session; the 30 s rollback can.
    kit, emulator = custom_router_kit(playbook_dirs=[site], delay_s=0.35)
    sid = kit.approved("test-slow-block", PARAMS)
    run = kit.run(sid)
    assert run.state == "rolled_back", run.detail
    assert run.failed_step == "add-deny"
    assert step_status(run) == [("pre_checks", "acl-exists", "ok"), ("steps", "add-deny", "timeout"),
                                ("rollback", "remove-deny", "ok")]
    timed_out = run.steps[1]
    assert "edge1" in (timed_out.detail or "") and "1 s" in (timed_out.detail or "")
    assert timed_out.elapsed_s is not None and timed_out.elapsed_s < 3
    assert emulator.sessions[-1][-3:] == ["no 100", "end", "exit"]
    assert DENY not in emulator.acl(BLOCK_ACL)
    assert suggestion_state(kit, sid) == "rolled_back"
    assert kit.app.audit.verify().ok


def test_failed_post_check_rolls_back_and_alerts(custom_router_kit, write_site_playbook, alert_hook,  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_site_playbook(site, "test-refused-check", post_argv="[show, access-lists]")
    # The device refuses the post-check's command: the change cannot be confirmed, so it is undone.
    kit, emulator = custom_router_kit(playbook_dirs=[site], extra_toml=alert_hook.toml(),
                                      fail_on="show access-lists")
    sid = kit.approved("test-refused-check", PARAMS)
    run = kit.run(sid)
    assert run.state == "rolled_back", run.detail
    assert run.failed_step == "deny-present"
    assert step_status(run) == [("pre_checks", "acl-exists", "ok"), ("steps", "add-deny", "ok"),
                                ("post_checks", "deny-present", "failed"), ("rollback", "remove-deny", "ok")]
    assert run.steps[2].exit_status == 1
    assert [s[0] for s in emulator.sessions] == ["show ip access-lists WATCHSTANDER-BLOCK", "terminal length 0",
                                                 "show access-lists", "terminal length 0"]
    assert "no 100" in emulator.sessions[-1]
    assert emulator.acl(BLOCK_ACL) == ["10000 permit ip any any"]
    assert suggestion_state(kit, sid) == "rolled_back"
    alert = alert_hook.wait_for(lambda p: p.get("run") == run.id)
    assert alert["type"] == "watchstander.alert" and alert["state"] == "rolled_back"
    assert alert["suggestion"] == sid and alert["targets"] == ["edge1"]
    assert "deny-present" in alert["detail"]
    assert kit.app.audit.verify().ok


def test_failed_post_check_without_rollback_fails_and_alerts(custom_router_kit, write_site_playbook,  # type: ignore[no-untyped-def]
                                                              alert_hook, tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_site_playbook(site, "test-no-undo", post_expect='"permit ip host {{ inputs.address }}"', rollback=False)
    kit, emulator = custom_router_kit(playbook_dirs=[site], extra_toml=alert_hook.toml())
    sid = kit.approved("test-no-undo", PARAMS)
    run = kit.run(sid)
    assert run.state == "failed", run.detail
    assert step_status(run) == [("pre_checks", "acl-exists", "ok"), ("steps", "add-deny", "ok"),
                                ("post_checks", "deny-present", "failed")]
    assert DENY in emulator.acl(BLOCK_ACL)  # changed, not confirmed, nothing to undo it with
    # A failed post-check is a failure a person must see, rollback or not.
    alert = alert_hook.wait_for(lambda p: p.get("run") == run.id)
    assert alert["state"] == "failed" and "deny-present" in alert["detail"]
    assert kit.app.audit.verify().ok


def test_failed_pre_check_changes_nothing_and_does_not_alert(custom_router_kit, alert_hook) -> None:  # type: ignore[no-untyped-def]
    kit, emulator = custom_router_kit(extra_toml=alert_hook.toml(), preload_block_acl=False)
    sid = kit.approved(BLOCK, PARAMS)
    run = kit.run(sid)
    assert run.state == "failed" and run.failed_step == "acl-exists", run.detail
    assert step_status(run) == [("pre_checks", "acl-exists", "failed")]
    assert emulator.sessions == [["show ip access-lists WATCHSTANDER-BLOCK"]]
    assert alert_hook.posts == []  # nothing was changed: the run's record is enough
    assert kit.app.audit.verify().ok


def test_failed_rollback_is_rollback_failed_and_alerts(custom_router_kit, write_site_playbook, alert_hook,  # type: ignore[no-untyped-def]
                                                       tmp_path: Path) -> None:
    site = tmp_path / "site"
    # A post-check whose expectation is never met, and a device that refuses the rollback's line.
    write_site_playbook(site, "test-stuck-block", post_expect='"permit ip host {{ inputs.address }}"')
    kit, emulator = custom_router_kit(playbook_dirs=[site], extra_toml=alert_hook.toml(), fail_on="no 100")
    sid = kit.approved("test-stuck-block", PARAMS)
    run = kit.run(sid)
    assert run.state == "rollback_failed", run.detail
    assert step_status(run) == [("pre_checks", "acl-exists", "ok"), ("steps", "add-deny", "ok"),
                                ("post_checks", "deny-present", "failed"), ("rollback", "remove-deny", "error")]
    detail = run.detail or ""
    assert "deny-present" in detail and "rollback remove-deny" in detail and "no 100" in detail
    assert DENY in emulator.acl(BLOCK_ACL)  # the device is half-changed, and the run says so
    assert suggestion_state(kit, sid) == "rollback_failed"
    alert = alert_hook.wait_for(lambda p: p.get("run") == run.id)
    assert alert["state"] == "rollback_failed" and "ROLLBACK FAILED" in alert["title"]
    assert str(run.id) in alert["title"]
    assert kit.app.audit.verify().ok


# ------------------------------------------------------------------ what was approved, once


def test_playbook_edited_after_approval_is_refused_before_connecting(  # type: ignore[no-untyped-def]
        custom_router_kit, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    site.mkdir()
    source = (library_dir() / f"{BLOCK}.yaml").read_text(encoding="utf-8")
    path = site / "site-block-acl.yaml"
    path.write_text(source.replace(f"id: {BLOCK}\n", "id: site-block-acl\n"), encoding="utf-8")
    kit, emulator = custom_router_kit(playbook_dirs=[site])
    sid = kit.approved("site-block-acl", PARAMS)
    # After both approvals, someone edits the file: what would run is no longer what was approved.
    path.write_text(path.read_text(encoding="utf-8").replace("any log", "any"), encoding="utf-8")

    with pytest.raises(PlaybookChanged) as raised:
        kit.run(sid)
    assert raised.value.suggestion_id == sid and "site-block-acl" in str(raised.value)
    status = main(["--config", str(kit.config_path), "runs", "start", str(sid)])
    err = capsys.readouterr().err
    assert status == 9, err
    assert "site-block-acl" in err and "changed" in err

    assert emulator.connections == 0 and emulator.sessions == []
    assert run_count(kit) == 0
    assert suggestion_state(kit, sid) == "approved"  # not consumed: a person decides what happens next
    assert kit.app.audit.verify().ok


def test_an_approval_runs_once(custom_router_kit) -> None:  # type: ignore[no-untyped-def]
    kit, emulator = custom_router_kit()
    sid = kit.approved(BLOCK, PARAMS)
    first = kit.run(sid)
    assert first.state == "succeeded", first.detail
    sessions, connections = emulator.sessions, emulator.connections
    with pytest.raises(IllegalTransition):
        kit.run(sid)
    assert emulator.sessions == sessions and emulator.connections == connections
    assert sessions[0] == ["show ip access-lists WATCHSTANDER-BLOCK"] and len(sessions) == 3
    assert run_count(kit) == 1
    assert suggestion_state(kit, sid) == "succeeded"
    assert kit.app.audit.verify().ok


def test_two_concurrent_runs_of_one_approval_make_one_run(custom_router_kit) -> None:  # type: ignore[no-untyped-def]
    kit, emulator = custom_router_kit()
    sid = kit.approved(BLOCK, PARAMS)
    service = kit.service()

    async def both() -> list[Run | BaseException]:
        try:
            return await asyncio.gather(service.run_suggestion(sid, "uid:1004:operator"),
                                        service.run_suggestion(sid, "uid:1005:other"), return_exceptions=True)
        finally:
            await service.ssh.close()

    results = asyncio.run(both())
    done = [r for r in results if isinstance(r, Run)]
    refused = [r for r in results if not isinstance(r, Run)]
    assert len(done) == 1 and done[0].state == "succeeded", results
    assert len(refused) == 1 and isinstance(refused[0], AlreadyDecided | IllegalTransition), refused
    assert run_count(kit) == 1
    assert len(emulator.sessions) == 3  # pre-check, change, post-check: once
    assert emulator.acl(BLOCK_ACL) == [DENY, "10000 permit ip any any"]
    assert kit.app.audit.verify().ok
