"""Runs: an approved suggestion becomes a run of its playbook on real devices, recorded step by step.

    claim      one transaction: the approval is consumed (approved → queued, its binding to the
               playbook hash, parameters and sealed approvals checked once more), the run row is
               written, the suggestion moves to running, all audited
    run        playbooks.runner.Runner with the executors; every step durable before it starts
    finish     one transaction: the run's end state, the suggestion's, and the audit record
    alert      failures a person must see go to the journal, the webhook and e-mail
    recover    at start: runs whose process is gone are `interrupted`, never run again
    revert     the rendered rollback stored with the run, on demand or when its timer is due

Concurrency is bounded overall and per device (asyncio semaphores, devices taken in name order so
two runs over the same devices cannot deadlock).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from watchstander.connectors.errors import DeviceError
from watchstander.connectors.ssh import SshPool
from watchstander.playbooks import Playbook, PlaybookError, RenderedStep, get_action
from watchstander.playbooks.executors import Environment, build_executors
from watchstander.playbooks.model import Expect
from watchstander.playbooks.runner import Executor, Phase, Runner, RunReport, StepOutcome, describe, printable

from ..config.load import scrub_secrets
from ..config.model import default_state_dir
from ..errors import Exit, NotFoundError, WatchstanderError
from ..policy.errors import AlreadyDecided
from ..store.runs import Run, load_run, run_steps, runs
from ..store.suggestions import Suggestion, suggestions
from .alerts import Alerts
from .wiring import App

log = logging.getLogger(__name__)

ALERT_STATES = ("rollback_failed", "interrupted")
CLAIMED_STATES = ("queued", "running", "succeeded", "failed", "rolled_back", "rollback_failed", "interrupted")
TIMER_ACTOR = "watchstander:timer"


class RunError(WatchstanderError):
    """A run cannot be reverted in the state it is in (already reverted, still running, no rollback)."""

    exit_status = Exit.ILLEGAL_TRANSITION


@lru_cache(maxsize=1)
def runner_identity() -> str:
    """host:pid:start-time of this process: tells a live runner from a dead one with a reused pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            # Field 22 (starttime) counted after the ")" that ends the command name, which may hold spaces.
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def _alive(runner: str) -> bool | None:
    """Whether the process a runner id names still runs; None when it ran on another host."""
    host, _, rest = runner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    now = _start_time(pid)
    if now == "?":
        return None  # a hardened /proc hides it: cannot tell, so leave the run alone
    return now == started


def _step_to_json(step: RenderedStep) -> dict[str, Any]:
    return {"section": step.section, "id": step.id, "action": step.action, "args": step.args.model_dump(mode="json"),
            "timeout_s": step.timeout_s, "target": step.target,
            "expect": step.expect.model_dump(mode="json") if step.expect else None}


def _step_from_json(data: dict[str, Any]) -> RenderedStep:
    action = get_action(str(data["action"]))
    return RenderedStep(str(data["section"]), str(data["id"]), action.name, action.args_model.model_validate(data["args"]),
                        int(data["timeout_s"]), Expect.model_validate(data["expect"]) if data.get("expect") else None,
                        data.get("target"))


@dataclass
class _Journal:
    """Records a run's steps in the store and the audit log, each before and after it runs."""

    service: RunService
    run_id: int
    actor: str

    async def started(self, phase: Phase, step: RenderedStep, command: str) -> int:
        return await asyncio.to_thread(self.service.record_start, self.run_id, self.actor, phase, step, command)

    async def finished(self, record: int, outcome: StepOutcome) -> None:
        await asyncio.to_thread(self.service.record_end, self.run_id, self.actor, record, outcome)


class RunService:
    """Claims approved suggestions and runs them; one per process, shared by every run in it."""

    def __init__(self, app: App, *, executors: dict[str, Executor] | None = None,
                 capture_dir: Path | None = None) -> None:
        self.app = app
        cfg = app.config.runner
        self.devices = app.devices
        self.alerts = Alerts(app.config, app.devices)
        self.ssh = SshPool(max_output=cfg.output_limit)
        self.capture_dir = capture_dir or cfg.capture_dir or default_state_dir() / "captures"
        self._executors = executors
        self._global: asyncio.Semaphore | None = None
        self._per_device: dict[str, asyncio.Semaphore] = {}
        self.in_flight: dict[int, asyncio.Task[Run | None]] = {}

    # ------------------------------------------------------------------ running

    def executors_for(self, label: str) -> dict[str, Executor]:
        """The executor table (the injected one in tests, else the real connectors)."""
        if self._executors is not None:
            return self._executors
        env = Environment(self.devices, self.ssh, Path(self.capture_dir), self.app.config.runner.capture_max_bytes,
                          label=label, now=self.app.clock)
        return build_executors(env)

    async def run_suggestion(self, suggestion_id: int, actor: str) -> Run:
        """Claim one approved suggestion and run its playbook; returns the finished run."""
        catalogue = self.app.catalogue()
        queue = self.app.review_queue(catalogue)
        seen = queue.get(suggestion_id)
        # Devices are known before the claim, so a run waiting for a busy device holds no approval yet.
        try:
            rendered = catalogue.get(seen.playbook_id).render(seen.parameters, self.devices)
            targets = sorted({s.target for s in rendered if s.target})
        except (PlaybookError, DeviceError):
            targets = []  # a stale suggestion: the claim below refuses it and says why
        async with self._slots(targets):
            run_id, playbook, suggestion = await asyncio.to_thread(self._claim, suggestion_id, actor, catalogue)
            log.info("run %d of suggestion #%d (%s) started by %s", run_id, suggestion_id, playbook.id, actor)
            steps: list[RenderedStep] = []
            try:
                steps = playbook.render(suggestion.parameters, self.devices)
                runner = Runner(self.executors_for(f"run-{run_id}"))
                report = await runner.run(steps, _Journal(self, run_id, actor), timeout_s=playbook.spec.timeout_s)
                revert_s = playbook.revert_after_s(suggestion.parameters) if report.state == "succeeded" else None
            except Exception as exc:  # the barrier around one run: it ends failed, never stays "running"
                log.exception("run %d failed unexpectedly", run_id)
                report, revert_s = RunReport("failed", detail=f"{type(exc).__name__}: {exc}"), None
            await asyncio.to_thread(self._finish, run_id, suggestion_id, actor, report, revert_s)
        run = self.get(run_id)
        log.info("run %d ended %s%s", run_id, run.state, f": {run.detail}" if run.detail else "")
        # A step or post-check that failed with no rollback to run may have left a change behind.
        unconfirmed = report.state == "failed" and any(
            s.id == report.failed_step and s.section in ("steps", "post_checks") for s in steps)
        if report.state in ("rolled_back", "rollback_failed") or unconfirmed:
            if report.state == "rolled_back":
                title = f"run {run_id} of {playbook.id} failed and was rolled back"
            elif report.state == "rollback_failed":
                title = f"run {run_id} of {playbook.id}: ROLLBACK FAILED, the device may be half-changed"
            else:
                title = f"run {run_id} of {playbook.id} failed at {report.failed_step} with no rollback to undo it"
            await self.alerts.raise_alert(title, report.detail, self._alert_data(run))
        return run

    def _alert_data(self, run: Run) -> dict[str, Any]:
        return {"run": run.id, "suggestion": run.suggestion_id, "playbook": run.playbook_id, "state": run.state,
                "targets": sorted({s.target for s in run.steps if s.target})}

    @asynccontextmanager
    async def _slots(self, targets: Sequence[str]) -> AsyncIterator[None]:
        cfg = self.app.config.runner
        if self._global is None:
            self._global = asyncio.Semaphore(cfg.max_concurrent)
        async with AsyncExitStack() as stack:
            # Devices first, in name order, then an overall slot: a run waiting for a busy device
            # must not hold one of the overall slots that runs on other devices need.
            for target in targets:
                await stack.enter_async_context(
                    self._per_device.setdefault(target, asyncio.Semaphore(cfg.max_per_device)))
            await stack.enter_async_context(self._global)
            yield

    def _claim(self, suggestion_id: int, actor: str, catalogue: Any) -> tuple[int, Playbook, Suggestion]:
        box: dict[str, Any] = {}
        queue = self.app.review_queue(catalogue)
        now = self.app.clock()

        def record(conn: Connection, s: Suggestion) -> None:
            playbook = catalogue.get(s.playbook_id)  # the claim checked it is exactly the approved content
            rollback = [_step_to_json(step) for step in playbook.render(s.parameters, self.devices)
                        if step.section == "rollback"]
            run_id = conn.execute(runs.insert().values(
                suggestion_id=s.id, incident_id=s.incident_id, playbook_id=s.playbook_id,
                playbook_hash=s.playbook_hash, params_json=s.params_json, runner=runner_identity(), actor=actor,
                state="running", started_at=now.isoformat(), started_ts=now.timestamp(),
                rollback_json=json.dumps(rollback, sort_keys=True))).inserted_primary_key[0]  # type: ignore[index]
            queue.transition_in(conn, s.id, "running", actor, detail=f"run {run_id}")
            self.app.audit.append(actor, "run.start", f"run:{run_id}", {
                "suggestion": s.id, "playbook": s.playbook_id, "playbook_hash": s.playbook_hash,
                "params_sha256": s.params_sha256, "runner": runner_identity()}, conn=conn)
            box.update(run_id=int(run_id), playbook=playbook, suggestion=s)

        queue.claim(suggestion_id, actor, then=record)
        return box["run_id"], box["playbook"], box["suggestion"]

    def record_start(self, run_id: int, actor: str, phase: str, step: RenderedStep, command: str) -> int:
        """Write (and audit) that a step starts; returns its record id. Committed before it runs."""
        now = self.app.clock().isoformat()
        with self.app.store.begin() as conn:
            rid = conn.execute(run_steps.insert().values(
                run_id=run_id, phase=phase, step_id=step.id, action=step.action, target=step.target,
                command=command, status="running", started_at=now)).inserted_primary_key[0]  # type: ignore[index]
            self.app.audit.append(actor, "run.step.start", f"run:{run_id}", {
                "phase": phase, "step": step.id, "action": step.action, "target": step.target,
                "command": command}, conn=conn)
        return int(rid)

    def record_end(self, run_id: int, actor: str, record: int, outcome: StepOutcome) -> None:
        """Write (and audit) how a step ended, its output bounded, escaped and scrubbed of secrets."""
        limit = self.app.config.runner.output_limit
        result = outcome.result
        output = printable(scrub_secrets(result.output), limit) if result else None
        detail = printable(scrub_secrets(outcome.detail), 2000) if outcome.detail else None
        with self.app.store.begin() as conn:
            conn.execute(update(run_steps).where(run_steps.c.id == record).values(
                status=outcome.status, ended_at=self.app.clock().isoformat(), elapsed_s=round(outcome.elapsed_s, 3),
                exit_status=result.exit_status if result else None, output=output,
                value=None if result is None or result.value is None else str(result.value),
                artifacts_json=json.dumps(list(result.artifacts)) if result else None, detail=detail))
            self.app.audit.append(actor, "run.step.end", f"run:{run_id}", {
                "record": record, "status": outcome.status, "exit_status": result.exit_status if result else None,
                "detail": detail, "artifacts": list(result.artifacts) if result else []}, conn=conn)

    def _finish(self, run_id: int, suggestion_id: int, actor: str, report: RunReport, revert_s: int | None) -> None:
        now = self.app.clock()
        due = now + timedelta(seconds=revert_s) if revert_s else None
        with self.app.store.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                state=report.state, ended_at=now.isoformat(), failed_step=report.failed_step,
                detail=printable(scrub_secrets(report.detail), 4000) or None,
                revert_due_ts=due.timestamp() if due else None, revert_due_at=due.isoformat() if due else None))
            self.app.review_queue().transition_in(conn, suggestion_id, report.state, actor,
                                                  detail=f"run {run_id}: {report.detail}"[:2000])
            self.app.audit.append(actor, "run.end", f"run:{run_id}", {
                "state": report.state, "failed_step": report.failed_step, "detail": report.detail[:2000],
                "revert_due_at": due.isoformat() if due else None}, conn=conn)

    # ------------------------------------------------------------------ reading

    def get(self, run_id: int) -> Run:
        """One run with its steps; raises NotFoundError when there is none."""
        with self.app.store.engine.connect() as conn:
            run = load_run(conn, run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id}")
        return run

    # ------------------------------------------------------------------ recovery

    def recover(self, actor: str = "watchstander:runner") -> list[Run]:
        """Runs whose process is gone become `interrupted` (their in-flight step too); never re-run."""
        found: list[Run] = []
        with self.app.store.engine.connect() as conn:
            rows = conn.execute(select(runs.c.id, runs.c.runner).where(
                or_(runs.c.state == "running", runs.c.revert_state == "running"))).all()
        for row in rows:
            if _alive(row.runner) is not False:
                continue  # still running here, or on another host this process cannot see
            now = self.app.clock().isoformat()
            with self.app.store.begin() as conn:
                run = load_run(conn, int(row.id))
                if run is None:
                    continue
                flight = run.in_flight
                conn.execute(update(run_steps).where(run_steps.c.run_id == run.id, run_steps.c.status == "running")
                             .values(status="interrupted", ended_at=now,
                                     detail="the agent stopped while this step ran; its effect is unknown"))
                if run.state == "running":
                    conn.execute(update(runs).where(runs.c.id == run.id, runs.c.state == "running").values(
                        state="interrupted", ended_at=now,
                        detail=f"interrupted during {flight.phase} {flight.step_id}" if flight
                        else "interrupted before its first step"))
                    self.app.review_queue().transition_in(conn, run.suggestion_id, "interrupted", actor,
                                                          detail=f"run {run.id} interrupted")
                else:
                    conn.execute(update(runs).where(runs.c.id == run.id).values(revert_state="interrupted"))
                self.app.audit.append(actor, "run.interrupted", f"run:{run.id}", {
                    "in_flight": flight.step_id if flight else None, "phase": flight.phase if flight else None,
                    "runner": run.runner}, conn=conn)
            found.append(self.get(run.id))
        return found

    async def recover_and_alert(self, actor: str = "watchstander:runner") -> list[Run]:
        """`recover`, then an alert for each interrupted run: a person must decide what happens next."""
        found = await asyncio.to_thread(self.recover, actor)
        for run in found:
            flight = run.in_flight
            where = f"during {flight.phase} step {flight.step_id} ({flight.command})" if flight else "before any step"
            await self.alerts.raise_alert(
                f"run {run.id} of {run.playbook_id} was interrupted",
                f"The agent stopped {where}. It will not be run again: check the device, then "
                f"`watchstander runs revert {run.id}` or approve a new suggestion.", self._alert_data(run))
        return found

    # ------------------------------------------------------------------ revert

    async def revert(self, run_id: int, actor: str) -> Run:
        """Run the stored rollback of a run (succeeded, interrupted or after a failed rollback); single use."""
        steps, targets = await asyncio.to_thread(self._claim_revert, run_id, actor)
        async with self._slots(targets):
            runner = Runner(self.executors_for(f"run-{run_id}-revert"))
            ok = await runner.rollback(steps, _Journal(self, run_id, actor), phase="revert")
        state = "reverted" if ok else "revert_failed"
        now = self.app.clock().isoformat()
        with self.app.store.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                revert_state=state, reverted_at=now, reverted_by=actor))
            self.app.audit.append(actor, "run.revert.end", f"run:{run_id}", {"state": state}, conn=conn)
        run = self.get(run_id)
        if not ok:
            await self.alerts.raise_alert(f"revert of run {run_id} ({run.playbook_id}) FAILED",
                                          "the rollback steps did not all succeed; check the device",
                                          self._alert_data(run))
        return run

    def _claim_revert(self, run_id: int, actor: str) -> tuple[list[RenderedStep], list[str]]:
        with self.app.store.begin() as conn:
            run = load_run(conn, run_id)
            if run is None:
                raise NotFoundError(f"no run {run_id}")
            if run.state not in ("succeeded", "interrupted", "rollback_failed", "rolled_back"):
                raise RunError(f"run {run_id} is {run.state}: only a finished run can be reverted")
            raw = conn.execute(select(runs.c.rollback_json).where(runs.c.id == run_id)).scalar_one()
            steps = [_step_from_json(d) for d in json.loads(raw)]
            if not steps:
                raise RunError(f"run {run_id}: playbook {run.playbook_id} has no rollback steps to revert with")
            # Conditional: of two reverts (a person and the timer) exactly one proceeds.
            claimed = conn.execute(update(runs).where(
                runs.c.id == run_id,
                or_(runs.c.revert_state.is_(None), runs.c.revert_state.in_(("revert_failed", "interrupted"))),
            ).values(revert_state="running", runner=runner_identity(), revert_due_ts=None))
            if claimed.rowcount != 1:
                raise RunError(f"run {run_id} is already reverted or being reverted ({run.revert_state})")
            self.app.audit.append(actor, "run.revert.start", f"run:{run_id}", {"steps": [s.id for s in steps]},
                                  conn=conn)
        return steps, sorted({s.target for s in steps if s.target})

    def due_reverts(self) -> list[int]:
        """Runs whose timed revert is due now."""
        now = self.app.clock().timestamp()
        with self.app.store.engine.connect() as conn:
            return [int(r) for r in conn.execute(select(runs.c.id).where(and_(
                runs.c.state == "succeeded", runs.c.revert_due_ts.is_not(None), runs.c.revert_due_ts <= now,
                runs.c.revert_state.is_(None))).order_by(runs.c.revert_due_ts)).scalars()]

    async def revert_due(self) -> list[Run]:
        """Revert every run whose timer is due (a failure is alerted and left for a person)."""
        out: list[Run] = []
        for run_id in await asyncio.to_thread(self.due_reverts):
            try:
                out.append(await self.revert(run_id, TIMER_ACTOR))
            except RunError as exc:
                log.info("timed revert of run %d skipped: %s", run_id, exc)
        return out

    # ------------------------------------------------------------------ the daemon's loop

    def claimable(self, suggestion_id: int) -> bool:
        """Whether the suggestion is approved and no other runner is claiming it right now.

        SKIP LOCKED (PostgreSQL; SQLite has one agent and ignores it): a row another node's claim
        has locked reads as absent instead of making this node wait and then lose.
        """
        t = suggestions
        with self.app.store.begin() as conn:
            return conn.execute(select(t.c.id).where(t.c.id == suggestion_id, t.c.state == "approved")
                                .with_for_update(skip_locked=True)).first() is not None

    def approved_ids(self) -> list[int]:
        """Approved, unexpired suggestions waiting for a run, oldest first."""
        now = self.app.clock().timestamp()
        t = suggestions
        with self.app.store.engine.connect() as conn:
            return [int(r) for r in conn.execute(select(t.c.id).where(
                t.c.state == "approved", t.c.expires_ts > now).order_by(t.c.id)).scalars()]

    async def dispatch(self, actor: str) -> list[int]:
        """Start a task for every approved suggestion not already in flight; returns their ids."""
        started: list[int] = []
        for sid in await asyncio.to_thread(self.approved_ids):
            if sid in self.in_flight:
                continue
            task = asyncio.create_task(self._guarded_run(sid, actor), name=f"run-suggestion-{sid}")
            self.in_flight[sid] = task
            task.add_done_callback(self._forget(sid))
            started.append(sid)
        return started

    def _forget(self, suggestion_id: int) -> Callable[[asyncio.Task[Run | None]], None]:
        def done(_task: asyncio.Task[Run | None]) -> None:
            self.in_flight.pop(suggestion_id, None)
        return done

    async def _guarded_run(self, suggestion_id: int, actor: str) -> Run | None:
        """Run one dispatched suggestion; None when another runner (another node) claimed it first."""
        try:
            if not await asyncio.to_thread(self.claimable, suggestion_id):
                log.debug("suggestion #%d: claimed by another runner; skipped", suggestion_id)
                return None
            return await self.run_suggestion(suggestion_id, actor)
        except AlreadyDecided as exc:
            if exc.state in CLAIMED_STATES:  # lost the claim race to another node: theirs runs it
                log.debug("suggestion #%d: claimed by another runner meanwhile; skipped", suggestion_id)
                return None
            log.warning("suggestion #%d was not run: %s", suggestion_id, exc)
            raise
        except WatchstanderError as exc:
            log.warning("suggestion #%d was not run: %s", suggestion_id, exc)
            raise
        except Exception:  # the barrier around one run (STYLE rule 2)
            log.exception("run of suggestion #%d failed unexpectedly", suggestion_id)
            raise

    async def drain(self, timeout_s: float) -> None:
        """Let runs in flight finish (up to `timeout_s`), then cancel the rest; they become interrupted."""
        tasks = list(self.in_flight.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.ssh.close()


def render_for_review(app: App, suggestion: Suggestion) -> list[dict[str, Any]]:
    """What a suggestion will run, step by step, exactly as the runner will send it."""
    playbook = app.catalogue().get(suggestion.playbook_id)
    return [{"section": s.section, "step": s.id, "action": s.action, "target": s.target, "command": describe(s),
             "timeout_s": s.timeout_s} for s in playbook.render(suggestion.parameters, app.devices)]
