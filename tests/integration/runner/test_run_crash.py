"""Crash safety: a runner SIGKILLed mid-step leaves an `interrupted` run that is never re-run by itself.

The run happens in a real `watchstander runs start` process against the IOS emulator over real
SSH; the test kills it while the device is still answering a step, then does what a restarted
agent does (`recover_and_alert` over a reopened store) and checks that nothing repeats, nothing
else is blocked and a person is alerted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.ios_emulator import BLOCK_ACL

from watchstander.agent.cli.main import main
from watchstander.agent.policy.errors import IllegalTransition
from watchstander.agent.store.runs import Run

pytestmark = pytest.mark.integration

PARAMS = {"router": "edge1", "address": "203.0.113.7", "sequence": 100}
OTHER = {"router": "edge1", "address": "203.0.113.8", "sequence": 110}


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str,
               proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    """Poll `condition` every 20 ms; fail naming `what` (and the process's stderr if it ended)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the runner exited {proc.returncode} before {what}: "
                                 f"{log.read_text(errors='replace') if log else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s} s")
        time.sleep(0.02)


def watchstander_command() -> list[str]:
    """The installed console script, as an operator runs it (or the module, if it is not installed)."""
    script = Path(sys.executable).parent / "watchstander"
    return [str(script)] if script.exists() else [sys.executable, "-m", "watchstander.agent.cli.main"]


@pytest.mark.slow
def test_runner_killed_mid_step_is_interrupted_never_repeated_nothing_blocked(  # type: ignore[no-untyped-def]
        custom_router_kit, write_site_playbook, alert_hook, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    write_site_playbook(site, "test-hang-block", pre_checks=False)
    # Every line the device receives takes a minute to answer: the change step hangs.
    kit, emulator = custom_router_kit(playbook_dirs=[site], extra_toml=alert_hook.toml(), delay_s=60)
    sid = kit.approved("test-hang-block", PARAMS)
    other = kit.approved("block-address-ios-acl", OTHER)

    log = tmp_path / "runner.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([*watchstander_command(), "--config", str(kit.config_path), "runs", "start", str(sid)],
                                stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: any(emulator.sessions), 30, "line on the device", proc, log)
        # While its process lives, a run is left alone, even by another process's recovery.
        assert kit.service().recover() == []
        assert kit.service().get(1).state == "running"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    seen = emulator.sessions
    assert seen == [["terminal length 0"]]  # the step was in flight: its first line sent, no answer yet
    emulator.delay_s = 0.0

    # The agent starts again: the run whose process is gone becomes interrupted, and a person hears of it.
    kit.close()
    kit.reopen()
    service = kit.service()
    found = asyncio.run(service.recover_and_alert())
    assert [r.id for r in found] == [1]
    run = service.get(1)
    assert run.state == "interrupted" and run.suggestion_id == sid
    flight = run.in_flight
    assert flight is not None and (flight.phase, flight.step_id, flight.status) == ("steps", "add-deny", "interrupted")
    assert [(s.phase, s.step_id, s.status) for s in run.steps] == [("steps", "add-deny", "interrupted")]
    assert "add-deny" in (run.detail or "")
    assert str(kit.app.review_queue().get(sid).state) == "interrupted"
    alert = alert_hook.wait_for(lambda p: p.get("run") == 1)
    assert alert["state"] == "interrupted" and "add-deny" in alert["detail"]
    assert service.recover() == []  # once is enough: recovery is idempotent

    status = main(["--config", str(kit.config_path), "runs", "show", "1"])
    out = capsys.readouterr().out
    assert status == 0
    assert "[interrupted]" in out and "INTERRUPTED during: steps add-deny" in out
    assert main(["--config", str(kit.config_path), "runs", "show", "1", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "interrupted" and shown["in_flight_step"] == "add-deny"

    # Never re-run: the approval was consumed by the run that was interrupted.
    with pytest.raises(IllegalTransition):
        kit.run(sid)
    assert emulator.sessions == seen

    # Nothing else is blocked: another approved suggestion for the same device runs now.
    run2 = kit.run(other)
    assert run2.state == "succeeded", run2.detail
    assert emulator.sessions[:1] == seen and len(emulator.sessions) == 4
    assert "110 deny ip host 203.0.113.8 any log" in emulator.acl(BLOCK_ACL)
    assert "100 deny ip host 203.0.113.7 any log" not in emulator.acl(BLOCK_ACL)
    assert kit.app.audit.verify().ok


def test_recover_leaves_a_run_of_this_live_process_alone(custom_router_kit) -> None:  # type: ignore[no-untyped-def]
    kit, emulator = custom_router_kit(delay_s=0.15)
    sid = kit.approved("block-address-ios-acl", PARAMS)
    service = kit.service()

    async def go() -> tuple[list[Run], str, Run]:
        task = asyncio.create_task(service.run_suggestion(sid, "uid:1004:operator"))
        try:
            while not emulator.sessions:
                await asyncio.sleep(0.02)
            found = await asyncio.to_thread(service.recover)
            during = service.get(1).state
            return found, during, await task
        finally:
            await service.ssh.close()

    found, during, run = asyncio.run(go())
    assert found == [] and during == "running"
    assert run.state == "succeeded", run.detail
    assert all(s.status == "ok" for s in run.steps)
    assert kit.app.audit.verify().ok


