"""Core commands: config check, replay, incidents, demo."""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

from .config import masked_dump, validate_config
from .context import Context
from .errors import EXIT_OK, NotFoundError
from .incident_store import IncidentRepository
from .incident_view import incident_json, incidents_table
from .ingest import ReplayReport, replay


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the core command groups."""
    cfg = sub.add_parser("config", parents=[parent], help="inspect the configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = cfg_sub.add_parser("check", parents=[parent],
                               help="validate and print the effective config (secrets masked); exit 2 when invalid")
    check.add_argument("--format", choices=("toml", "json"), default="toml")
    check.set_defaults(handler=cmd_config_check)

    rp = sub.add_parser("replay", parents=[parent],
                        help="run pcap/pcapng, syslog, Suricata EVE or DNS-name files through the pipeline",
                        description="Each file's type is sniffed from its content. Findings are correlated into "
                                    "incidents, triaged and stored; a summary is printed.")
    rp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    rp.add_argument("--format", choices=("table", "json"), default="table", help="summary format")
    rp.add_argument("--no-progress", action="store_true", help="no progress line even on a terminal")
    rp.set_defaults(handler=cmd_replay)

    inc = sub.add_parser("incidents", parents=[parent], help="list and show incidents")
    inc_sub = inc.add_subparsers(dest="incidents_command", metavar="ACTION", required=True)
    ls = inc_sub.add_parser("list", parents=[parent], help="incidents, most severe first")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.add_argument("--limit", type=int, default=1000)
    ls.set_defaults(handler=cmd_incidents_list)
    show = inc_sub.add_parser("show", parents=[parent], help="one incident with its findings and verdict")
    show.add_argument("id", type=int, metavar="ID")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(handler=cmd_incidents_show)

    run = sub.add_parser("run", parents=[parent], help="run the daemon (syslog listeners, followed files)",
                         description="Runs until SIGTERM/SIGINT: receives syslog over UDP/TCP and follows the "
                                     "files in [sources], detects, correlates, triages and stores incidents "
                                     "every [sources] flush_s seconds.")
    run.set_defaults(handler=cmd_run)

    demo = sub.add_parser("demo", parents=[parent],
                          help="generate telemetry, replay it and print the incidents (no external services)",
                          description="Writes a synthetic capture, auth log and EVE file, replays them into a "
                                      "store of the demo's own, prints the incidents, and writes the EO 14409 "
                                      "compliance report as of today.")
    demo.add_argument("--out", type=Path, default=Path("watchstander-demo"),
                      help="folder for the demo's telemetry, store and report (default ./watchstander-demo)")
    demo.set_defaults(handler=cmd_demo)


def cmd_config_check(args: argparse.Namespace, ctx: Context) -> int:
    """Print the effective configuration, or every error with its key path."""
    from .cli import dump_json

    data = masked_dump(ctx.config)
    print(dump_json(data) if args.format == "json" else to_toml(data))
    print("config ok", file=sys.stderr)
    return EXIT_OK


class _ProgressLine:
    """A progress line on stderr, redrawn at most five times a second, only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.last = 0.0
        self.t0 = time.monotonic()

    def __call__(self, index: int, total: int, name: str, events: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        rate = events / max(now - self.t0, 1e-6)
        sys.stderr.write(f"\r[{index}/{total}] {name[:40]}: {events:,} events ({rate:,.0f}/s)\x1b[K")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _print_summary(report: ReplayReport) -> None:
    rate = report.events / report.seconds if report.seconds else 0.0
    print(f"files: {len(report.files)}  events: {report.events:,}  findings: {report.findings}  "
          f"incidents: {len(report.incidents)}  time: {report.seconds:.2f} s ({rate:,.0f} events/s)")
    for f in report.files:
        skipped = sum(f.skipped.values())
        extra = f"  skipped: {skipped} ({', '.join(f'{k}: {v}' for k, v in f.skipped.items())})" if skipped else ""
        print(f"  {f.path} [{f.format}]: {f.events:,} events{extra}")
    if report.detector_failures:
        print(f"  detector failures: {report.detector_failures}")
    if report.incidents:
        from .models import severity_rank

        ordered = sorted(report.incidents, key=lambda i: (
            -severity_rank(i.verdict.severity if i.verdict else i.severity), i.id or 0))
        print()
        print(incidents_table(ordered))
    suggestions, refused = report.suggestions, report.refused
    print()
    if suggestions:
        print(f"{len(suggestions)} suggestion(s) await review (watchstander suggestions list):")
        for sug in suggestions:
            params = ", ".join(f"{k}={v}" for k, v in sug.parameters.items())
            print(f"  #{sug.id} [{sug.state}] incident {sug.incident_id}: {sug.playbook_id} ({sug.risk} risk) {params}")
    else:
        print("no suggestions")
    if refused:
        print(f"{len(refused)} recommended action(s) refused by the policy guard (watchstander audit export):")
        for d in refused[:20]:
            # Model output is attacker-influenced: shown escaped, never interpreted by the terminal.
            print(f"  {str(d.playbook_id)[:80]!r}: {d.reason}" + (f" ({str(d.detail)[:120]!r})" if d.detail else ""))


def cmd_replay(args: argparse.Namespace, ctx: Context) -> int:
    """Replay files and print what was found."""
    from .cli import dump_json

    progress = _ProgressLine(not args.no_progress)
    try:
        report = replay(args.files, ctx.config, ctx.store, ctx.clock, ctx.identity, progress)
    finally:
        progress.done()
    if args.format == "json":
        data = report.as_dict()
        data["incidents"] = [incident_json(i, with_findings=False) for i in report.incidents]
        print(dump_json(data))
    else:
        _print_summary(report)
    return EXIT_OK


def cmd_incidents_list(args: argparse.Namespace, ctx: Context) -> int:
    """List incidents."""
    from .cli import dump_json

    items = IncidentRepository(ctx.store, ctx.clock).list(limit=args.limit)
    if args.format == "json":
        print(dump_json([incident_json(i, with_findings=False) for i in items]))
    elif items:
        print(incidents_table(items))
    else:
        print("no incidents")
    return EXIT_OK


def cmd_incidents_show(args: argparse.Namespace, ctx: Context) -> int:
    """Show one incident."""
    from .cli import dump_json

    inc = IncidentRepository(ctx.store, ctx.clock).get(args.id)
    if inc is None:
        raise NotFoundError(f"no incident with id {args.id}")
    data = incident_json(inc)
    if args.format == "json":
        print(dump_json(data))
        return EXIT_OK
    print(f"Incident {data['id']}: {data['title']}")
    print(f"  severity {data['severity']} (detectors said {data['detector_severity']}), status {data['status']}")
    print(f"  seen {data['first_seen']} .. {data['last_seen']}")
    print(f"  detectors: {', '.join(data['detectors'])}   ATT&CK: {', '.join(data['attack_techniques'])}")
    for role, values in data["entities"].items():
        print(f"  {role}: {', '.join(values)}")
    print(f"  counts: {', '.join(f'{k}={v}' for k, v in data['counts'].items())}")
    v = data["verdict"]
    if v:
        print(f"  verdict: {v['disposition']} at confidence {v['confidence']} ({v['provenance']['analyst']})")
        print(f"    {v['summary']}")
        print(f"    why: {v['rationale']}")
        for a in v["recommended_actions"]:
            print(f"    suggest {a['playbook']} {a['parameters']}: {a['justification']}")
    for f in data["findings"]:
        print(f"  - [{f['detector']}] {f['title']} ({f['count']} events) evidence: {', '.join(f['evidence'][:3])}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the daemon until a signal stops it."""
    import asyncio

    from .control.wiring import build_control_server  # registers the review tables' migrations
    from .daemon import Daemon

    daemon = Daemon(ctx.config, ctx.store, ctx.clock)
    control = build_control_server(ctx.config, ctx.store, ctx.clock)

    async def serve() -> None:
        await control.start()
        try:
            await daemon.run_until_signalled()
        finally:
            await control.stop()

    asyncio.run(serve())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, ctx: Context) -> int:
    """Generate telemetry, replay it into the demo's own store and print the incidents."""
    from .context import Context as Ctx
    from .demo_data import DEMO_CONFIG, write_demo_telemetry

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    db = out / "watchstander.db"
    cfg_path = out / "watchstander.toml"
    import grp
    import os
    import tempfile

    sock = Path(tempfile.gettempdir()) / f"watchstander-demo-{os.getuid()}.sock"
    cfg_path.write_text(DEMO_CONFIG.format(db=db, socket=sock, group=grp.getgrgid(os.getgid()).gr_name),
                        encoding="utf-8")
    validate_config(tomllib.loads(cfg_path.read_text(encoding="utf-8")))
    demo_ctx = Ctx(config_path=cfg_path, clock=ctx.clock)
    try:
        now = ctx.clock()
        approved = _approve_shipped_playbooks(demo_ctx)
        print(f"Approved {approved} shipped playbook definition(s) in the demo's store as {demo_ctx.identity} "
              "(a real site reviews each one: watchstander playbooks approve PATH).")
        files = write_demo_telemetry(out / "telemetry", now)
        print(f"Demo telemetry written to {out / 'telemetry'} (capture, auth log, Suricata EVE).")
        report = replay(files, demo_ctx.config, demo_ctx.store, demo_ctx.clock, demo_ctx.identity)
        _print_summary(report)
        print()
        print(f"Store: {db}   Inspect with: watchstander --config {cfg_path} incidents show ID")
        try:
            from .cli_guidance import write_demo_report
        except ImportError:
            write_demo_report = None  # type: ignore[assignment]
        if write_demo_report is not None:
            paths = write_demo_report(demo_ctx, out / "report", date.fromtimestamp(now.timestamp()))
            for p in paths:
                print(f"EO 14409 compliance report: {p}")
    finally:
        demo_ctx.close()
    return EXIT_OK


def _approve_shipped_playbooks(ctx: Context) -> int:
    """Approve every shipped playbook definition in a (demo) store; returns how many were new."""
    from watchstander.playbooks import load_library

    from .playbook_store import ApprovalStore

    approvals = ApprovalStore(ctx.store, ctx.audit, ctx.clock)
    count = 0
    for playbook in load_library(ctx.config.playbooks.dirs):
        if not approvals.is_approved(playbook):
            approvals.approve(playbook, ctx.identity, "demo: shipped library approved for the demonstration")
            count += 1
    return count


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Render plain config data as TOML (tables after scalars, arrays of tables as [[...]])."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, table in tables:
        name = f"{prefix}{key}"
        lines.append(f"\n[{name}]")
        lines.append(to_toml(table, name + ".").strip("\n"))
    for key, items in arrays:
        for item in items:
            lines.append(f"\n[[{prefix}{key}]]")
            lines.append(to_toml(item, f"{prefix}{key}.").strip("\n"))
    return "\n".join(line for line in lines if line != "")


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
