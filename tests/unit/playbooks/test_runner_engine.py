"""The runner engine on its own: phase order, expectations, rollback in reverse, timeouts, the barrier."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from watchstander.connectors.errors import DeviceRefused
from watchstander.playbooks import ACTIONS, PlaybookValidationError, RenderedStep, load_library, load_playbook_bytes
from watchstander.playbooks.executors import Environment, build_executors
from watchstander.playbooks.runner import ActionResult, RunReport, Runner, StepOutcome, describe, printable

SITE = """\
id: three-phase
version: 1
title: A playbook with every section
description: For the engine tests.
risk: low
timeout_s: 60
inputs:
  host: {type: device, role: linux-host, description: The host.}
pre_checks:
  - {id: pre, action: ssh.command, args: {target: "{{ inputs.host }}", argv: [pre]}}
steps:
  - {id: one, action: ssh.command, args: {target: "{{ inputs.host }}", argv: [one]}}
  - {id: two, action: ssh.command, args: {target: "{{ inputs.host }}", argv: [two]}}
post_checks:
  - {id: post, action: ssh.command, args: {target: "{{ inputs.host }}", argv: [post]},
     expect: {output_contains: fine}}
rollback:
  - {id: undo-one, action: ssh.command, args: {target: "{{ inputs.host }}", argv: [undo-one]}}
  - {id: undo-two, action: ssh.command, args: {target: "{{ inputs.host }}", argv: [undo-two]}}
"""


class Journal:
    """Records what the runner reports, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.outcomes: dict[int, StepOutcome] = {}

    async def started(self, phase: str, step: RenderedStep, command: str) -> int:
        self.events.append((phase, step.id, command))
        return len(self.events)

    async def finished(self, record: int, outcome: StepOutcome) -> None:
        self.outcomes[record] = outcome


def steps() -> list[RenderedStep]:
    return load_playbook_bytes(SITE.encode()).render({"host": "h1"})


def run(behaviour: dict[str, Any], timeout_s: float = 60) -> tuple[RunReport, Journal]:
    async def ssh_command(step: RenderedStep, timeout: float) -> ActionResult:
        b = behaviour.get(step.id, ActionResult(exit_status=0, output="fine"))
        if isinstance(b, Exception):
            raise b
        if b == "hang":
            await asyncio.sleep(3600)
        return b  # type: ignore[no-any-return]

    journal = Journal()
    report = asyncio.run(Runner({"ssh.command": ssh_command}).run(steps(), journal, timeout_s=timeout_s))
    return report, journal


def test_success_runs_pre_steps_post_in_order_and_no_rollback() -> None:
    report, journal = run({})
    assert report.state == "succeeded"
    assert [e[1] for e in journal.events] == ["pre", "one", "two", "post"]
    assert journal.events[1] == ("steps", "one", "ssh h1: one")


def test_failed_pre_check_changes_nothing() -> None:
    report, journal = run({"pre": ActionResult(exit_status=1)})
    assert report.state == "failed" and report.failed_step == "pre"
    assert [e[1] for e in journal.events] == ["pre"]


def test_failed_post_check_rolls_back_in_reverse_order() -> None:
    report, journal = run({"post": ActionResult(exit_status=0, output="broken")})
    assert report.state == "rolled_back" and report.failed_step == "post"
    assert [e[1] for e in journal.events] == ["pre", "one", "two", "post", "undo-two", "undo-one"]
    assert "does not contain 'fine'" in report.detail


def test_failed_rollback_is_rollback_failed_and_every_rollback_step_still_runs() -> None:
    report, journal = run({"two": DeviceRefused("h1", "% Invalid input"),
                           "undo-two": DeviceRefused("h1", "cannot undo")})
    assert report.state == "rollback_failed"
    assert [e[1] for e in journal.events][-2:] == ["undo-two", "undo-one"]
    assert "h1: % Invalid input" in report.detail and "cannot undo" in report.detail


def test_nonzero_exit_fails_a_step_without_an_expectation() -> None:
    report, _ = run({"one": ActionResult(exit_status=3)})
    assert report.state == "rolled_back" and "exit status 3" in report.detail


def test_step_timeout_and_playbook_budget() -> None:
    report, journal = run({"one": "hang"}, timeout_s=0.3)
    assert report.state == "rolled_back"
    outcome = journal.outcomes[2]
    assert outcome.status == "timeout"


def test_unexpected_exception_is_contained_by_the_barrier() -> None:
    report, journal = run({"one": ZeroDivisionError("boom")})
    assert report.state == "rolled_back"
    assert journal.outcomes[2].status == "error" and "ZeroDivisionError" in journal.outcomes[2].detail


def test_every_registered_action_has_one_executor(tmp_path: Path) -> None:
    table = build_executors(Environment(devices=None, ssh=None, capture_dir=tmp_path))  # type: ignore[arg-type]
    assert set(table) == set(ACTIONS)


def test_every_shipped_step_describes_itself() -> None:
    for playbook in load_library():
        for step in playbook.spec.steps:
            assert step.action in ACTIONS
    pb = load_library().get("switch-port-shutdown")
    rendered = pb.render({"switch": "sw1", "if_index": 3})
    assert describe(rendered[1]) == "snmp set sw1: 1.3.6.1.2.1.2.2.1.7.3 integer 2"


def test_printable_escapes_terminal_controls_and_bounds_output() -> None:
    shown = printable("ok\x1b[2J\x07\u202eevil\nnext", 100)
    assert "\x1b" not in shown and "\u202e" not in shown and "\\x1b" in shown and "\n" in shown
    assert printable("x" * 50, 10).endswith("[... output truncated]")


@pytest.mark.parametrize("value, message", [
    ('"{{ inputs.host }}"', "integer input"),
    ("0", "from 1 to 525600"),
])
def test_revert_after_minutes_is_checked_at_load(value: str, message: str) -> None:
    text = SITE.replace("timeout_s: 60\n", f"timeout_s: 60\nrevert_after_minutes: {value}\n")
    with pytest.raises(PlaybookValidationError) as info:
        load_playbook_bytes(text.encode())
    assert any(message in p.message for p in info.value.problems)


def test_revert_after_minutes_follows_its_input() -> None:
    pb = load_library().get("block-address-ios-acl")
    assert pb.revert_after_s({"router": "r1", "address": "192.0.2.1", "sequence": 10, "minutes": 15}) == 900
