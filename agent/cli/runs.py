"""`watchstander runs ...`: start an approved suggestion in the foreground, list and show runs, revert one.

The daemon runs approved suggestions by itself when `[runner] auto_run = true`; `runs start` is
for sites that keep that off, or for an operator who wants to watch one run. Either way the
approval is consumed once, in the same transaction that records the run.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ..app.runs import RunService
from ..control.client import via_daemon_or_local
from ..control.read_methods import runs_list, runs_show
from ..errors import EXIT_OK, Exit, InputError
from ..store.runs import RUN_STATES, Run, run_from_dict
from .context import Context
from .output import dump_json, printable


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the runs command group."""
    p = sub.add_parser("runs", parents=[parent], help="run approved suggestions; list, show and revert runs")
    rsub = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True)

    start = rsub.add_parser("start", parents=[parent],
                            help="run one approved suggestion now, in the foreground (exit 13 unless it succeeds)")
    start.add_argument("suggestion_id", type=int, metavar="SUGGESTION_ID")
    start.add_argument("--format", choices=("text", "json"), default="text")
    start.set_defaults(handler=cmd_start)

    ls = rsub.add_parser("list", parents=[parent], help="runs, newest first")
    ls.add_argument("--state", choices=RUN_STATES)
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.add_argument("--local", action="store_true", help="read the store in-process even when a daemon runs")
    ls.set_defaults(handler=cmd_list)

    show = rsub.add_parser("show", parents=[parent], help="one run: every step, its command, status and output")
    show.add_argument("run_id", type=int, metavar="ID")
    show.add_argument("--format", choices=("text", "table", "json"), default="text", help="table is the same as text")
    show.add_argument("--local", action="store_true", help="read the store in-process even when a daemon runs")
    show.set_defaults(handler=cmd_show)

    revert = rsub.add_parser("revert", parents=[parent],
                             help="undo a run now with its approved rollback steps (audited; exit 13 if it fails)")
    revert.add_argument("run_id", type=int, metavar="ID")
    revert.add_argument("--format", choices=("text", "json"), default="text")
    revert.set_defaults(handler=cmd_revert)


def _print_run(run: Run, *, steps: bool = True) -> None:
    print(f"run {run.id}: {printable(run.playbook_id)} for suggestion #{run.suggestion_id} [{run.state}]")
    print(f"  started:  {run.started_at} by {printable(run.actor)} on {printable(run.runner)}")
    if run.ended_at:
        print(f"  ended:    {run.ended_at}")
    if run.detail:
        print(f"  detail:   {printable(run.detail, 2000)}")
    flight = run.in_flight
    if run.state == "interrupted" or run.revert_state == "interrupted":
        print(f"  INTERRUPTED during: {printable(flight.phase + ' ' + flight.step_id) if flight else 'no step'}"
              " -- check the device; this run is never repeated by itself")
    if run.revert_due_at and not run.revert_state:
        print(f"  reverts by itself at {run.revert_due_at}")
    if run.revert_state:
        print(f"  revert:   {run.revert_state}{' at ' + run.reverted_at if run.reverted_at else ''}"
              f"{' by ' + printable(run.reverted_by) if run.reverted_by else ''}")
    if not steps:
        return
    for s in run.steps:
        code = f" exit {s.exit_status}" if s.exit_status is not None else ""
        took = f" {s.elapsed_s:.2f} s" if s.elapsed_s is not None else ""
        print(f"  {s.phase:<11} {printable(s.step_id)} [{s.status}{code}{took}] {s.started_at}")
        print(f"    $ {printable(s.command, 2000)}")
        if s.detail:
            print(f"    ! {printable(s.detail, 2000)}")
        for line in (s.output or "").splitlines()[:40]:
            print(f"    | {printable(line, 400)}")
        if s.output and len(s.output.splitlines()) > 40:
            print("    | [... more in --format json]")
        for artifact in s.artifacts:
            print(f"    evidence: {printable(artifact)}")


def _finish(run: Run, fmt: str, ok: bool) -> int:
    if fmt == "json":
        print(dump_json(run.as_dict()))
    else:
        _print_run(run)
    return EXIT_OK if ok else int(Exit.RUN_FAILED)


def cmd_start(args: argparse.Namespace, ctx: Context) -> int:
    """Claim and run one approved suggestion in this process."""
    if args.suggestion_id < 1:
        raise InputError("SUGGESTION_ID must be a positive integer")
    service = RunService(ctx.app)
    actor = ctx.identity

    async def go() -> Run:
        try:
            await service.recover_and_alert()
            return await service.run_suggestion(args.suggestion_id, actor)
        finally:
            await service.ssh.close()

    run = asyncio.run(go())
    return _finish(run, args.format, run.state == "succeeded")


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    """Runs, newest first: through the daemon (viewer role) when one runs, else from the store."""
    params = {"state": args.state, "limit": max(1, min(args.limit, 10000))}
    rows = via_daemon_or_local(ctx, "runs.list", params, lambda _who: runs_list(ctx.query_store, params),
                               local=args.local)["runs"]
    if args.format == "json":
        print(dump_json({"runs": rows}))
        return EXIT_OK
    if not rows:
        print("no runs")
        return EXIT_OK
    print(f"{'ID':>5}  {'STATE':<15} {'SUGG':>5}  {'PLAYBOOK':<28} {'STARTED':<26} REVERT")
    for r in map(run_from_dict, rows):
        print(f"{r.id:>5}  {r.state:<15} {r.suggestion_id:>5}  {printable(r.playbook_id):<28} {r.started_at:<26} "
              f"{r.revert_state or (('due ' + r.revert_due_at) if r.revert_due_at else '-')}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    """One run with every step."""
    params = {"id": args.run_id}
    data = via_daemon_or_local(ctx, "runs.show", params, lambda _who: runs_show(ctx.query_store, params),
                               local=args.local)["run"]
    if args.format == "json":
        print(dump_json(data))
    else:
        _print_run(run_from_dict(data))
    return EXIT_OK


def cmd_revert(args: argparse.Namespace, ctx: Context) -> int:
    """Undo a run with its stored rollback steps."""
    service = RunService(ctx.app)
    actor = ctx.identity

    async def go() -> Run:
        try:
            return await service.revert(args.run_id, actor)
        finally:
            await service.ssh.close()

    run = asyncio.run(go())
    return _finish(run, args.format, run.revert_state == "reverted")
