"""Timed and early reverts on the emulated router: due after N minutes across a restart, single use, audited."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support.ios_emulator import BLOCK_ACL
from support.runkit import RunKit

from watchstander.agent.app.runs import TIMER_ACTOR, RunError
from watchstander.agent.cli.main import main
from watchstander.agent.store.runs import Run, runs

pytestmark = pytest.mark.integration

DENY = "100 deny ip host 203.0.113.7 any log"
PERMIT_ALL = "10000 permit ip any any"


def revert_now(kit: RunKit, run_id: int) -> Run:
    """`RunService.revert` in a fresh loop, as an operator."""
    return kit.revert(run_id)


def due_ts(kit: RunKit, run_id: int) -> float | None:
    """The stored timer of a run (what the agent re-arms from after a restart)."""
    with kit.store.engine.connect() as conn:
        value = conn.execute(runs.select().with_only_columns(runs.c.revert_due_ts)
                             .where(runs.c.id == run_id)).scalar_one()
    return None if value is None else float(value)


def test_timed_revert_runs_after_its_minutes_across_a_restart(  # type: ignore[no-untyped-def]
        custom_router_kit, write_site_playbook, movable_clock, tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_site_playbook(site, "test-timed-block", timed=True)
    kit, emulator = custom_router_kit(playbook_dirs=[site], clock=movable_clock)
    sid = kit.approved("test-timed-block", {"router": "edge1", "address": "203.0.113.7", "sequence": 100,
                                            "minutes": 2})
    run = kit.run(sid)
    assert run.state == "succeeded", run.detail
    ended = movable_clock()
    assert run.revert_due_at is not None
    assert datetime.fromisoformat(run.revert_due_at) == ended + timedelta(minutes=2)
    assert run.revert_state is None
    assert DENY in emulator.acl(BLOCK_ACL)

    service = kit.service()
    assert service.due_reverts() == []
    movable_clock.advance(minutes=1, seconds=59)
    assert service.due_reverts() == []
    assert asyncio.run(service.revert_due()) == []
    assert DENY in emulator.acl(BLOCK_ACL)
    sessions = len(emulator.sessions)

    # The agent restarts after the block's time is up: the timer lives in the store, not in memory.
    movable_clock.advance(seconds=2)
    kit.close()
    kit.reopen()
    service = kit.service()
    assert service.due_reverts() == [run.id]

    async def timer() -> list[Run]:
        try:
            return await service.revert_due()
        finally:
            await service.ssh.close()

    reverted = asyncio.run(timer())
    assert [r.id for r in reverted] == [run.id]
    done = reverted[0]
    assert done.state == "succeeded" and done.revert_state == "reverted"
    assert done.reverted_by == TIMER_ACTOR and done.reverted_at == movable_clock().isoformat()
    assert [(s.phase, s.step_id, s.status) for s in done.steps][-1] == ("revert", "remove-deny", "ok")
    assert emulator.acl(BLOCK_ACL) == [PERMIT_ALL]
    assert len(emulator.sessions) == sessions + 1 and "no 100" in emulator.sessions[-1]
    assert due_ts(kit, run.id) is None and service.due_reverts() == []

    # Single use: neither the timer nor a person reverts it twice.
    movable_clock.advance(minutes=10)
    assert asyncio.run(service.revert_due()) == []
    with pytest.raises(RunError):
        revert_now(kit, run.id)
    assert len(emulator.sessions) == sessions + 1
    records = [r for r in kit.app.audit.records() if r.subject == f"run:{run.id}"]
    assert [(r.action, r.actor) for r in records][-4:] == [
        ("run.revert.start", TIMER_ACTOR), ("run.step.start", TIMER_ACTOR), ("run.step.end", TIMER_ACTOR),
        ("run.revert.end", TIMER_ACTOR)]
    assert records[-1].data["state"] == "reverted" and records[-3].data["phase"] == "revert"
    assert kit.app.audit.verify().ok


def test_runs_revert_undoes_a_run_early_and_is_audited(  # type: ignore[no-untyped-def]
        custom_router_kit, movable_clock, capsys: pytest.CaptureFixture[str]) -> None:
    kit, emulator = custom_router_kit(clock=movable_clock)
    sid = kit.approved("block-address-ios-acl", {"router": "edge1", "address": "203.0.113.7", "sequence": 100,
                                                 "minutes": 30})
    run = kit.run(sid)
    assert run.state == "succeeded", run.detail
    assert run.revert_due_at is not None and DENY in emulator.acl(BLOCK_ACL)

    status = main(["--config", str(kit.config_path), "runs", "revert", str(run.id)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "revert:   reverted" in out and "remove-deny [ok" in out
    assert emulator.acl(BLOCK_ACL) == [PERMIT_ALL]

    done = kit.service().get(run.id)
    assert done.revert_state == "reverted" and done.reverted_by is not None
    assert done.reverted_by.startswith("uid:")  # the operator who ran the command, by real uid
    records = [r for r in kit.app.audit.records() if r.subject == f"run:{run.id}"]
    actions = [r.action for r in records]
    assert actions.index("run.revert.start") < actions.index("run.revert.end")
    start = records[actions.index("run.revert.start")]
    assert start.actor == done.reverted_by and start.data["steps"] == ["remove-deny"]
    assert records[actions.index("run.revert.end")].data["state"] == "reverted"
    step_records = [r for r in records if r.action == "run.step.start" and r.data["phase"] == "revert"]
    assert [r.data["step"] for r in step_records] == ["remove-deny"]

    # The early revert cancels the timer: when the 30 minutes are up, nothing runs again.
    sessions = len(emulator.sessions)
    movable_clock.advance(minutes=31)
    assert due_ts(kit, run.id) is None and kit.service().due_reverts() == []
    status = main(["--config", str(kit.config_path), "runs", "revert", str(run.id)])
    err = capsys.readouterr().err
    assert status == 6, err  # RunError: already reverted
    assert "already reverted" in err
    assert len(emulator.sessions) == sessions
    assert kit.app.audit.verify().ok
