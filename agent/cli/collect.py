"""`watchstander collect list|show|baseline`: what SSH collection read from devices, and their approved baselines.

A device's first configuration snapshot becomes its baseline automatically (marked `auto`);
after that, drift is reported against the baseline until an operator approves a newer snapshot
with `collect baseline DEVICE` (audited, under the approver's identity). When a daemon runs, every
command goes through its control socket (viewer reads, approver approves).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..app.collection import approve_baselines, collected, device_snapshots
from ..control.client import via_daemon_or_local
from ..errors import EXIT_OK, InputError
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


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    """Every collected device and command: latest snapshot, when seen, and drift state."""
    rows: list[dict[str, Any]] = via_daemon_or_local(
        ctx, "collect.list", {}, lambda who: collected(ctx.query_store, ctx.clock))["snapshots"]
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
    params: dict[str, Any] = {"device": args.device, "command": args.command, "text": args.text}
    out: list[dict[str, Any]] = via_daemon_or_local(
        ctx, "collect.show", params,
        lambda who: device_snapshots(ctx.query_store, ctx.clock, args.device, args.command, args.text))["commands"]
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
    params: dict[str, Any] = {"device": args.device, "command": args.command, "snapshot": args.snapshot}
    approved: list[dict[str, Any]] = via_daemon_or_local(
        ctx, "collect.baseline", params,
        lambda who: approve_baselines(ctx.store, ctx.clock, ctx.audit, args.device, who, args.command,
                                      args.snapshot))["baselines"]
    if args.format == "json":
        print(dump_json({"device": args.device, "baselines": approved}))
        return EXIT_OK
    for b in approved:
        print(f"{printable(args.device)} {printable(b['command'])}: baseline is now snapshot "
              f"#{b['snapshot_id']} (sha256 {b['sha256'][:16]}), approved by {printable(b['approved_by'])}")
    return EXIT_OK
