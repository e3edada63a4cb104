"""`watchstander collect list|show|baseline`: what SSH collection read from devices, and their approved baselines.

A device's first configuration snapshot becomes its baseline automatically (marked `auto`);
after that, drift is reported against the baseline until an operator approves a newer snapshot
with `collect baseline DEVICE` (audited, under the operator's identity).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..daemon.ssh_collect import config_diff
from ..errors import EXIT_OK, InputError, NotFoundError
from ..store.snapshots import Baseline, Snapshot, SnapshotStore
from .context import Context
from .output import dump_json, printable


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the collect command group."""
    p = sub.add_parser("collect", parents=[parent],
                       help="SSH collection: device snapshots, drift and approved baselines")
    csub = p.add_subparsers(dest="collect_command", metavar="ACTION", required=True)
    ls = csub.add_parser("list", parents=[parent], help="every collected device and command, with its drift state")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(handler=cmd_list)
    show = csub.add_parser("show", parents=[parent],
                           help="a device's latest snapshots, baselines, and the diff from each baseline")
    show.add_argument("device", metavar="DEVICE")
    show.add_argument("--command", metavar="CMD", help="only this command (as `collect list` names it)")
    show.add_argument("--text", action="store_true", help="print the snapshot text itself")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(handler=cmd_show)
    base = csub.add_parser("baseline", parents=[parent],
                           help="approve the latest configuration snapshot(s) of DEVICE as the baseline (audited)")
    base.add_argument("device", metavar="DEVICE")
    base.add_argument("--command", metavar="CMD", help="only this command (default: every configuration command)")
    base.add_argument("--snapshot", type=int, metavar="ID", help="approve this snapshot instead of the latest")
    base.add_argument("--format", choices=("text", "json"), default="text")
    base.set_defaults(handler=cmd_baseline)


def _state(latest: Snapshot, baseline: Baseline | None) -> str:
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


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    """Every collected device and command: latest snapshot, when seen, and drift state."""
    snapshots = SnapshotStore(ctx.query_store, ctx.clock)
    rows: list[dict[str, Any]] = []
    for device in snapshots.devices():
        for command in snapshots.commands(device):
            latest = snapshots.latest(device, command)
            if latest is None:
                continue
            baseline = snapshots.baseline(device, command)
            rows.append({"device": device, "command": command, "kind": latest.kind, "snapshot": latest.id,
                         "sha256": latest.sha256, "last_seen": latest.last_seen,
                         "baseline": baseline.as_dict() if baseline else None, "state": _state(latest, baseline)})
    if args.format == "json":
        print(dump_json({"snapshots": rows}))
        return EXIT_OK
    if not rows:
        print("nothing collected yet: set [sources.ssh] every_s and give devices a [devices.ssh] section")
        return EXIT_OK
    print(f"{'DEVICE':<16} {'COMMAND':<28} {'STATE':<12} {'SNAPSHOT':<9} LAST SEEN")
    for r in rows:
        print(f"{printable(r['device']):<16} {printable(r['command']):<28} {r['state']:<12} "
              f"#{r['snapshot']:<8} {r['last_seen']}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    """One device's latest snapshots with their baselines and the diff from each."""
    snapshots = SnapshotStore(ctx.query_store, ctx.clock)
    out: list[dict[str, Any]] = []
    for command in _commands(snapshots, args.device, args.command):
        latest = snapshots.latest(args.device, command)
        assert latest is not None  # listed by commands()
        baseline = snapshots.baseline(args.device, command)
        entry: dict[str, Any] = {"command": command, "latest": latest.as_dict(text=args.text),
                                 "baseline": baseline.as_dict() if baseline else None,
                                 "state": _state(latest, baseline)}
        if baseline is not None and baseline.snapshot.sha256 != latest.sha256:
            entry["diff"] = config_diff(baseline.snapshot.text, latest.text, f"baseline #{baseline.snapshot.id}",
                                        f"latest #{latest.id}").text
        out.append(entry)
    if args.format == "json":
        print(dump_json({"device": args.device, "commands": out}))
        return EXIT_OK
    for entry in out:
        latest_d = entry["latest"]
        print(f"{printable(args.device)} {printable(entry['command'])}: {entry['state']}")
        print(f"  latest   #{latest_d['id']} sha256 {latest_d['sha256'][:16]}  first seen {latest_d['first_seen']}"
              f"  last seen {latest_d['last_seen']}{'  (truncated)' if latest_d['truncated'] else ''}")
        b = entry["baseline"]
        if b is not None:
            print(f"  baseline #{b['snapshot_id']} sha256 {b['sha256'][:16]}  approved by {printable(b['approved_by'])}"
                  f" at {b['approved_at']}{'  (auto: the first snapshot)' if b['auto'] else ''}")
        for line in (entry.get("diff") or "").splitlines():
            print("  " + printable(line))
        if args.text:
            for line in latest_d["text"].splitlines():
                print("  | " + printable(line))
    return EXIT_OK


def cmd_baseline(args: argparse.Namespace, ctx: Context) -> int:
    """Approve the latest (or a given) configuration snapshot as the baseline; audited."""
    if args.snapshot is not None and args.command is None:
        raise InputError("--snapshot ID needs --command CMD: a snapshot belongs to one command")
    snapshots = SnapshotStore(ctx.store, ctx.clock, ctx.audit)
    approved: list[Baseline] = []
    for command in _commands(snapshots, args.device, args.command):
        latest = snapshots.latest(args.device, command)
        if latest is None or latest.kind != "config":
            if args.command is not None:
                raise NotFoundError(f"{command!r} is not a configuration command: it has no baseline")
            continue
        baseline = snapshots.approve(args.device, command, ctx.identity, args.snapshot)
        if baseline is None:
            raise NotFoundError(f"no snapshot #{args.snapshot} of {command!r} on {args.device!r}")
        approved.append(baseline)
    if not approved:
        raise NotFoundError(f"no configuration snapshot of {args.device!r} to approve")
    if args.format == "json":
        print(dump_json({"device": args.device, "baselines": [
            {"command": b.snapshot.command, **b.as_dict()} for b in approved]}))
        return EXIT_OK
    for b in approved:
        print(f"{printable(args.device)} {printable(b.snapshot.command)}: baseline is now snapshot "
              f"#{b.snapshot.id} (sha256 {b.snapshot.sha256[:16]}), approved by {printable(b.approved_by)}")
    return EXIT_OK
