"""Runs of approved playbooks and their steps in the store (component "runs").

A run is created in the same transaction that consumes its suggestion's approval, and every step
is written (and audited) before its executor starts and again when it ends. So after a crash the
store says exactly which run and which step were in flight, and nothing claims the approval again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import Column, Connection, Float, Index, Integer, MetaData, String, Table, Text, select

from .engine import Component

_meta = MetaData()

runs = Table(
    "runs", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # UNIQUE: one approval, one run, whatever two runners race for.
    Column("suggestion_id", Integer, nullable=False, unique=True),
    Column("incident_id", Integer, nullable=True),
    Column("playbook_id", String(64), nullable=False),
    Column("playbook_hash", String(64), nullable=False),
    Column("params_json", Text, nullable=False),
    Column("runner", String(200), nullable=False),             # host:pid of the process that ran it
    Column("actor", String(200), nullable=False),              # who started it (daemon or an operator)
    Column("state", String(20), nullable=False),
    Column("started_at", String(40), nullable=False),
    Column("started_ts", Float, nullable=False),
    Column("ended_at", String(40), nullable=True),
    Column("failed_step", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    Column("rollback_json", Text, nullable=False),             # the rendered rollback steps, as approved
    Column("revert_due_ts", Float, nullable=True),              # a timed revert, kept across restarts
    Column("revert_due_at", String(40), nullable=True),
    Column("revert_state", String(20), nullable=True),          # running | reverted | revert_failed | interrupted
    Column("reverted_at", String(40), nullable=True),
    Column("reverted_by", String(200), nullable=True),
)
Index("ix_runs_state", runs.c.state)
Index("ix_runs_revert_due", runs.c.revert_due_ts)

run_steps = Table(
    "run_steps", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("phase", String(16), nullable=False),               # pre_checks | steps | post_checks | rollback | revert
    Column("step_id", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(64), nullable=True),
    Column("command", Text, nullable=False),
    Column("status", String(16), nullable=False),              # running | ok | failed | timeout | error | interrupted
    Column("started_at", String(40), nullable=False),
    Column("ended_at", String(40), nullable=True),
    Column("elapsed_s", Float, nullable=True),
    Column("exit_status", Integer, nullable=True),
    Column("output", Text, nullable=True),
    Column("value", Text, nullable=True),
    Column("artifacts_json", Text, nullable=True),
    Column("detail", Text, nullable=True),
)
Index("ix_run_steps_run", run_steps.c.run_id, run_steps.c.id)


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


SCHEMA = Component("runs", (_v1,))

RunStateName = Literal["running", "succeeded", "failed", "rolled_back", "rollback_failed", "interrupted"]
RUN_STATES: tuple[RunStateName, ...] = ("running", "succeeded", "failed", "rolled_back", "rollback_failed",
                                        "interrupted")


@dataclass(frozen=True)
class StepRow:
    """One recorded step of a run."""

    id: int
    phase: str
    step_id: str
    action: str
    target: str | None
    command: str
    status: str
    started_at: str
    ended_at: str | None
    elapsed_s: float | None
    exit_status: int | None
    output: str | None
    value: str | None
    artifacts: tuple[str, ...]
    detail: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["artifacts"] = list(self.artifacts)
        return out


@dataclass(frozen=True)
class Run:
    """A run of one approved suggestion, with its steps in the order they started."""

    id: int
    suggestion_id: int
    incident_id: int | None
    playbook_id: str
    playbook_hash: str
    parameters: dict[str, Any]
    runner: str
    actor: str
    state: RunStateName
    started_at: str
    ended_at: str | None
    failed_step: str | None
    detail: str | None
    revert_due_at: str | None
    revert_state: str | None
    reverted_at: str | None
    reverted_by: str | None
    steps: tuple[StepRow, ...] = field(default=())

    @property
    def in_flight(self) -> StepRow | None:
        """The step that had started and not ended (after a crash: the one that was interrupted)."""
        return next((s for s in reversed(self.steps) if s.status in ("running", "interrupted")), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, steps included."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "steps"}
        out["steps"] = [s.as_dict() for s in self.steps]
        flight = self.in_flight
        out["in_flight_step"] = flight.step_id if flight else None
        return out


def _step_from_row(r: Any) -> StepRow:
    try:
        artifacts = tuple(str(a) for a in json.loads(r.artifacts_json or "[]"))
    except ValueError:
        artifacts = ()
    return StepRow(r.id, r.phase, r.step_id, r.action, r.target, r.command, r.status, r.started_at, r.ended_at,
                   r.elapsed_s, r.exit_status, r.output, r.value, artifacts, r.detail)


def run_from_row(r: Any, steps: tuple[StepRow, ...] = ()) -> Run:
    """Rebuild a Run from its row (and its steps)."""
    try:
        params = json.loads(r.params_json)
    except ValueError:
        params = {}
    return Run(r.id, r.suggestion_id, r.incident_id, r.playbook_id, r.playbook_hash,
               params if isinstance(params, dict) else {}, r.runner, r.actor, cast(RunStateName, r.state),
               r.started_at, r.ended_at, r.failed_step, r.detail, r.revert_due_at, r.revert_state, r.reverted_at,
               r.reverted_by, steps)


def load_run(conn: Connection, run_id: int) -> Run | None:
    """One run with its steps, or None."""
    if not 0 < run_id < 2**63:
        return None
    row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        return None
    steps = tuple(_step_from_row(s) for s in conn.execute(
        select(run_steps).where(run_steps.c.run_id == run_id).order_by(run_steps.c.id)))
    return run_from_row(row, steps)


def run_for_suggestion(conn: Connection, suggestion_id: int) -> int | None:
    """The id of the run of a suggestion, if it has one."""
    hit = conn.execute(select(runs.c.id).where(runs.c.suggestion_id == suggestion_id)).scalar()
    return int(hit) if hit is not None else None


def list_runs(conn: Connection, state: str | None = None, limit: int = 100) -> list[Run]:
    """Runs newest first (without their steps), optionally in one state."""
    q = select(runs).order_by(runs.c.id.desc()).limit(limit)
    if state is not None:
        q = q.where(runs.c.state == state)
    return [run_from_row(r) for r in conn.execute(q)]


def run_from_dict(data: dict[str, Any]) -> Run:
    """Rebuild a Run from its `as_dict` form (what the control socket carries)."""
    steps: list[StepRow] = []
    for s in data.get("steps", []):
        fields: dict[str, Any] = {k: s.get(k) for k in StepRow.__dataclass_fields__}
        fields["artifacts"] = tuple(s.get("artifacts") or ())
        steps.append(StepRow(**fields))
    run_fields: dict[str, Any] = {k: data.get(k) for k in Run.__dataclass_fields__ if k != "steps"}
    return Run(**run_fields, steps=tuple(steps))
