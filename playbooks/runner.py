"""The playbook runner: pre-checks, steps and post-checks in order; on failure, the rollback.

The runner knows nothing of stores or approvals. It is handed rendered steps (every value already
accepted by its input type), a table of executors keyed by action name, and a journal that records
each step before it starts and after it ends. Because the journal's `started` returns only once
the record is durable, a crash leaves behind exactly which step was in flight, and a restarted
agent can say so instead of guessing (or running it again).

How a run ends:

    pre-check fails                          failed           nothing was changed
    step or post-check fails, no rollback    failed
    step or post-check fails, rollback ok    rolled_back
    step or post-check fails, rollback fails rollback_failed  a person must look at the device
    everything passes                        succeeded

Rollback steps are written in the order of the steps they undo and run in reverse (the last
change is undone first), every one of them even when an earlier one fails.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from watchstander.connectors.errors import ConnectorError, DeviceError, DeviceTimeout

from .actions import (
    NotifyWebhookArgs,
    PacketsCaptureArgs,
    SnmpGetArgs,
    SnmpSetArgs,
    SshCommandArgs,
    SshConfigArgs,
    WaitArgs,
)
from .model import Expect, RenderedStep

log = logging.getLogger(__name__)

RunState = Literal["running", "succeeded", "failed", "rolled_back", "rollback_failed", "interrupted"]
FINAL_STATES: tuple[RunState, ...] = ("succeeded", "failed", "rolled_back", "rollback_failed", "interrupted")
StepStatus = Literal["running", "ok", "failed", "timeout", "error"]
Phase = Literal["pre_checks", "steps", "post_checks", "rollback", "revert"]

# Grace on top of a step's own timeout: executors enforce it themselves; this is the backstop.
_BACKSTOP_S = 5.0
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_ACTIONS_WITH_EXIT_STATUS = ("ssh.command",)


@dataclass(frozen=True)
class ActionResult:
    """What an executor reports: an exit status, bounded output, a value to check, files written."""

    exit_status: int | None = None
    output: str = ""
    value: int | str | None = None
    artifacts: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepOutcome:
    """One step's end: its status, what the executor returned (if it returned) and why it failed."""

    status: StepStatus
    result: ActionResult | None = None
    detail: str = ""
    elapsed_s: float = 0.0


class Executor(Protocol):
    """Performs one action; raises ConnectorError (DeviceError) when the device fails it."""

    def __call__(self, step: RenderedStep, timeout_s: float) -> Awaitable[ActionResult]: ...


class RunJournal(Protocol):
    """Where a run's steps are recorded; `started` returns once the record is durable."""

    async def started(self, phase: Phase, step: RenderedStep, command: str) -> int: ...

    async def finished(self, record: int, outcome: StepOutcome) -> None: ...


def printable(text: str, limit: int = 65536) -> str:
    """Output as it may be shown: control and bidi characters escaped, at most `limit` characters."""
    cut = len(text) > limit
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                         else f"\\u{ord(m.group()):04x}", text[:limit])
    return shown + ("\n[... output truncated]" if cut else "")


def describe(step: RenderedStep) -> str:
    """The exact operation a step performs, as an operator reads it before approving."""
    a = step.args
    if isinstance(a, SshCommandArgs):
        return f"ssh {a.target}: {a.command_line()}"
    if isinstance(a, SshConfigArgs):
        tail = ["end", "copy running-config startup-config"] if a.save else ["end"]
        return f"ssh {a.target} (configure terminal): " + " | ".join([*a.lines, *tail])
    if isinstance(a, SnmpGetArgs):
        return f"snmp get {a.target}: {' '.join(a.oids)}"
    if isinstance(a, SnmpSetArgs):
        return f"snmp set {a.target}: {a.oid} {a.value_type} {a.value}"
    if isinstance(a, PacketsCaptureArgs):
        ports = f" ports {','.join(map(str, a.ports))}" if a.ports else ""
        return (f"capture on {a.interface}: hosts {','.join(a.hosts)}{ports} for {a.duration_s} s, "
                f"at most {a.max_packets} packets, snaplen {a.snaplen}")
    if isinstance(a, NotifyWebhookArgs):
        return f"notify webhook {a.webhook} [{a.severity}]: {a.title}"
    if isinstance(a, WaitArgs):
        return f"wait {a.seconds} s"
    return f"{step.action} {a.model_dump_json()}"


def unmet(step: RenderedStep, result: ActionResult) -> str | None:
    """Why a step's result fails its expectation, or None when it is met.

    A command that exits non-zero fails unless the step expects that status: a step that did not
    do what it says must never pass silently.
    """
    expect = step.expect or Expect()
    if step.action in _ACTIONS_WITH_EXIT_STATUS:
        wanted = 0 if expect.exit_status is None else expect.exit_status
        if result.exit_status != wanted:
            return f"exit status {result.exit_status}, expected {wanted}"
    elif expect.exit_status is not None and result.exit_status != expect.exit_status:
        return f"exit status {result.exit_status}, expected {expect.exit_status}"
    if expect.output_contains is not None and expect.output_contains not in result.output:
        return f"output does not contain {expect.output_contains!r}"
    if expect.output_excludes is not None and expect.output_excludes in result.output:
        return f"output contains {expect.output_excludes!r}"
    if expect.value is not None and str(result.value) != str(expect.value):
        return f"value {result.value!r}, expected {expect.value!r}"
    return None


@dataclass
class RunReport:
    """How a run ended and which step decided it."""

    state: RunState
    failed_step: str | None = None
    detail: str = ""
    outcomes: list[tuple[str, StepOutcome]] = field(default_factory=list)


class Runner:
    """Runs rendered steps through the executors, recording every step in the journal."""

    def __init__(self, executors: Mapping[str, Executor], *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.executors = executors
        self._monotonic = monotonic

    async def run(self, steps: Sequence[RenderedStep], journal: RunJournal, *, timeout_s: float) -> RunReport:
        """Pre-checks, steps, post-checks; on a failed step or post-check, the rollback."""
        deadline = self._monotonic() + timeout_s
        report = RunReport("running")
        by_phase = {phase: [s for s in steps if s.section == phase] for phase in ("pre_checks", "steps",
                                                                                     "post_checks", "rollback")}
        phases: tuple[Phase, ...] = ("pre_checks", "steps", "post_checks")
        for phase in phases:
            for step in by_phase[phase]:
                outcome = await self._one(phase, step, journal, deadline)
                report.outcomes.append((step.id, outcome))
                if outcome.status == "ok":
                    continue
                report.failed_step = step.id
                report.detail = f"{phase[:-1] if phase != 'steps' else 'step'} {step.id}: {outcome.detail}"
                if phase == "pre_checks" or not by_phase["rollback"]:
                    report.state = "failed"
                    return report
                undone = await self.rollback(by_phase["rollback"], journal, report)
                report.state = "rolled_back" if undone else "rollback_failed"
                return report
        report.state = "succeeded"
        return report

    async def rollback(self, steps: Sequence[RenderedStep], journal: RunJournal, report: RunReport | None = None,
                       *, phase: Phase = "rollback") -> bool:
        """Every rollback step, last first; True when all of them succeeded."""
        ok = True
        for step in reversed(steps):
            # Each rollback step gets its own full timeout: undoing must not starve because the
            # change itself used up the run's budget.
            outcome = await self._one(phase, step, journal, None)
            if report is not None:
                report.outcomes.append((step.id, outcome))
            if outcome.status != "ok":
                ok = False
                if report is not None:
                    report.detail += f"; rollback {step.id}: {outcome.detail}"
        return ok

    async def _one(self, phase: Phase, step: RenderedStep, journal: RunJournal, deadline: float | None) -> StepOutcome:
        record = await journal.started(phase, step, describe(step))
        outcome = await self._execute(step, deadline)
        await journal.finished(record, outcome)
        return outcome

    async def _execute(self, step: RenderedStep, deadline: float | None) -> StepOutcome:
        timeout = float(step.timeout_s)
        if deadline is not None:
            left = deadline - self._monotonic()
            if left <= 0:
                return StepOutcome("timeout", None, "the playbook's timeout_s was used up before this step")
            timeout = min(timeout, left)
        executor = self.executors.get(step.action)
        if executor is None:
            return StepOutcome("error", None, f"no executor for action {step.action!r}")
        began = self._monotonic()
        try:
            result = await asyncio.wait_for(executor(step, timeout), timeout + min(_BACKSTOP_S, max(0.5, timeout / 10)))
        except (TimeoutError, DeviceTimeout) as exc:
            detail = str(exc) if isinstance(exc, DeviceTimeout) else f"no answer within {timeout:g} s"
            return StepOutcome("timeout", None, detail, self._monotonic() - began)
        except DeviceError as exc:
            return StepOutcome("error", None, str(exc), self._monotonic() - began)
        except ConnectorError as exc:
            return StepOutcome("error", None, f"{step.target or step.action}: {exc}", self._monotonic() - began)
        except Exception as exc:  # the barrier around one playbook step (STYLE rule 2)
            log.exception("step %s (%s) failed unexpectedly", step.id, step.action)
            return StepOutcome("error", None, f"{type(exc).__name__}: {exc}", self._monotonic() - began)
        elapsed = self._monotonic() - began
        problem = unmet(step, result)
        if problem is not None:
            return StepOutcome("failed", result, problem, elapsed)
        return StepOutcome("ok", result, "", elapsed)
