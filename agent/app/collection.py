"""SSH collection use cases: what was collected, its drift from the approved baseline, and approving one.

The command line (in-process) and the daemon's control methods both return these dicts, so the
two doors print the same thing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..errors import InputError, NotFoundError
from ..store.audit import AuditLog
from ..store.engine import Store
from ..store.snapshots import Baseline, Snapshot, SnapshotStore

MAX_DIFF = 64 * 1024


@dataclass(frozen=True)
class Diff:
    """A bounded unified diff and how many lines it adds and removes."""

    text: str
    truncated: bool
    added: int
    removed: int


def config_diff(before: str, after: str, before_label: str, after_label: str, limit: int = MAX_DIFF) -> Diff:
    """The unified diff from `before` to `after`, cut at `limit` characters (the counts are complete)."""
    kept: list[str] = []
    size, added, removed, truncated = 0, 0, 0, False
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), before_label, after_label,
                                     lineterm="", n=3):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
        if size + len(line) + 1 > limit:
            truncated = True
            continue
        kept.append(line)
        size += len(line) + 1
    return Diff("\n".join(kept) + "\n" if kept else "", truncated, added, removed)


def drift_state(latest: Snapshot, baseline: Baseline | None) -> str:
    """'ok', 'DRIFT' or 'no baseline' for a configuration snapshot; '-' for other kinds."""
    if latest.kind != "config":
        return "-"
    if baseline is None:
        return "no baseline"
    return "ok" if baseline.snapshot.sha256 == latest.sha256 else "DRIFT"


def _commands(snapshots: SnapshotStore, device: str, command: str | None) -> list[str]:
    commands = snapshots.commands(device)
    if command is not None:
        commands = [c for c in commands if c == command]
    if not commands:
        what = f"command {command!r} of " if command else ""
        raise NotFoundError(f"nothing collected for {what}device {device!r} (see `watchstander collect list`)")
    return commands


def collected(store: Store, clock: Clock) -> dict[str, Any]:
    """Every collected device and command: its latest snapshot, when seen, and drift state."""
    snapshots = SnapshotStore(store, clock)
    rows: list[dict[str, Any]] = []
    for device in snapshots.devices():
        for command in snapshots.commands(device):
            latest = snapshots.latest(device, command)
            if latest is None:
                continue
            baseline = snapshots.baseline(device, command)
            rows.append({"device": device, "command": command, "kind": latest.kind, "snapshot": latest.id,
                         "sha256": latest.sha256, "last_seen": latest.last_seen,
                         "baseline": baseline.as_dict() if baseline else None,
                         "state": drift_state(latest, baseline)})
    return {"snapshots": rows}


def device_snapshots(store: Store, clock: Clock, device: str, command: str | None = None,
                     text: bool = False) -> dict[str, Any]:
    """One device's latest snapshots with their baselines and the bounded diff from each."""
    snapshots = SnapshotStore(store, clock)
    out: list[dict[str, Any]] = []
    for cmd in _commands(snapshots, device, command):
        latest = snapshots.latest(device, cmd)
        assert latest is not None  # listed by commands()
        baseline = snapshots.baseline(device, cmd)
        entry: dict[str, Any] = {"command": cmd, "latest": latest.as_dict(text=text),
                                 "baseline": baseline.as_dict() if baseline else None,
                                 "state": drift_state(latest, baseline)}
        if baseline is not None and baseline.snapshot.sha256 != latest.sha256:
            entry["diff"] = config_diff(baseline.snapshot.text, latest.text, f"baseline #{baseline.snapshot.id}",
                                        f"latest #{latest.id}").text
        out.append(entry)
    return {"device": device, "commands": out}


def approve_baselines(store: Store, clock: Clock, audit: AuditLog, device: str, actor: str,
                      command: str | None = None, snapshot_id: int | None = None) -> dict[str, Any]:
    """Approve the latest (or a given) configuration snapshot(s) of `device` as the baseline; audited."""
    if snapshot_id is not None and command is None:
        raise InputError("--snapshot ID needs --command CMD: a snapshot belongs to one command")
    snapshots = SnapshotStore(store, clock, audit)
    approved: list[Baseline] = []
    for cmd in _commands(snapshots, device, command):
        latest = snapshots.latest(device, cmd)
        if latest is None or latest.kind != "config":
            if command is not None:
                raise NotFoundError(f"{cmd!r} is not a configuration command: it has no baseline")
            continue
        baseline = snapshots.approve(device, cmd, actor, snapshot_id)
        if baseline is None:
            raise NotFoundError(f"no snapshot #{snapshot_id} of {cmd!r} on {device!r}")
        approved.append(baseline)
    if not approved:
        raise NotFoundError(f"no configuration snapshot of {device!r} to approve")
    return {"device": device, "baselines": [{"command": b.snapshot.command, **b.as_dict()} for b in approved]}
