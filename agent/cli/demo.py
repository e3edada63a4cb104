"""`watchstander demo`: generated telemetry through the whole pipeline into a store of the demo's own."""

from __future__ import annotations

import argparse
import asyncio
import grp
import os
import tempfile
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

from ..app.compliance import write_demo_report
from ..app.replay import replay
from ..config.load import validate_config
from ..console.demo import serve_demo
from ..demo.data import DEMO_CONFIG, write_demo_telemetry
from ..errors import EXIT_OK, InputError
from .context import Context
from .replay import print_summary

DEMO_APPROVERS = ("demo:approver-1", "demo:approver-2")


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the demo command."""
    demo = sub.add_parser("demo", parents=[parent],
                          help="generate telemetry, replay it and print the incidents (no external services)",
                          description="Writes a synthetic capture, auth log and EVE file, replays them into a "
                                      "store of the demo's own, prints the incidents, and writes the EO 14409 "
                                      "compliance report as of today.")
    demo.add_argument("--out", type=Path, default=Path("watchstander-demo"),
                      help="folder for the demo's telemetry, store and report (default ./watchstander-demo)")
    demo.add_argument("--console", action="store_true",
                      help="then serve the web console over the demo's store, with a demo CA and client "
                           "certificates for three people (printed), until Ctrl-C")
    demo.add_argument("--listen", default="127.0.0.1:8443", metavar="HOST:PORT",
                      help="where --console listens (default 127.0.0.1:8443, loopback)")
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace, ctx: Context) -> int:
    """Generate telemetry, replay it into the demo's own store and print the incidents."""
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    db = out / "watchstander.db"
    cfg_path = out / "watchstander.toml"
    sock = Path(tempfile.gettempdir()) / f"watchstander-demo-{os.getuid()}.sock"
    cfg_path.write_text(DEMO_CONFIG.format(db=db, socket=sock, group=grp.getgrgid(os.getgid()).gr_name),
                        encoding="utf-8")
    validate_config(tomllib.loads(cfg_path.read_text(encoding="utf-8")))
    demo_ctx = Context(config_path=cfg_path, clock=ctx.clock)
    try:
        now = ctx.clock()
        approved = _approve_shipped_playbooks(demo_ctx)
        print(f"Approved {approved} shipped playbook definition(s) in the demo's store as {' and '.join(DEMO_APPROVERS)} "
              "(a real site reviews each one: watchstander playbooks approve PATH; high risk needs two admins).")
        files = write_demo_telemetry(out / "telemetry", now)
        print(f"Demo telemetry written to {out / 'telemetry'} (capture, auth log, Suricata EVE).")
        report = replay(demo_ctx.app, files, demo_ctx.identity)
        print_summary(report)
        print()
        print(f"Store: {db}   Inspect with: watchstander --config {cfg_path} incidents show ID")
        paths = write_demo_report(demo_ctx.app, out / "report", date.fromtimestamp(now.timestamp()),
                                  actor=demo_ctx.identity)
        for p in paths:
            print(f"EO 14409 compliance report: {p}")
        if args.console:
            print()
            try:
                asyncio.run(serve_demo(demo_ctx.app, out / "console-pki", listen=args.listen))
            except OSError as exc:
                raise InputError(f"{exc.strerror} (choose another with --listen HOST:PORT)") from exc
    finally:
        demo_ctx.close()
    return EXIT_OK


def _approve_shipped_playbooks(ctx: Context) -> int:
    """Approve every shipped playbook definition in a (demo) store; returns how many were new."""
    approvals = ctx.app.approvals
    count = 0
    for playbook in ctx.app.catalogue():
        if not approvals.is_approved(playbook):
            # Two demo identities, so high-risk definitions (two-person rule) are approved as well.
            approvals.approve_with(playbook, DEMO_APPROVERS, "demo: shipped library approved for the demonstration")
            count += 1
    return count
