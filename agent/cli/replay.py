"""`watchstander replay FILE...`: files through the whole pipeline, with progress and a summary."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..app.incident_view import incident_json, incidents_table
from ..app.replay import ReplayReport, replay
from ..errors import EXIT_OK
from ..models import severity_rank
from .context import Context
from .output import dump_json, printable


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the replay command."""
    rp = sub.add_parser("replay", parents=[parent],
                        help="run pcap/pcapng, syslog, Suricata EVE or DNS-name files through the pipeline",
                        description="Each file's type is sniffed from its content. Findings are correlated into "
                                    "incidents, triaged and stored; a summary is printed.")
    rp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    rp.add_argument("--format", choices=("table", "json"), default="table", help="summary format")
    rp.add_argument("--no-progress", action="store_true", help="no progress line even on a terminal")
    rp.set_defaults(handler=cmd_replay)


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
        sys.stderr.write(f"\r[{index}/{total}] {printable(name, 40)}: {events:,} events ({rate:,.0f}/s)\x1b[K")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def print_summary(report: ReplayReport) -> None:
    """The human-readable summary; file names, titles and model text are shown escaped."""
    p = printable
    rate = report.events / report.seconds if report.seconds else 0.0
    print(f"files: {len(report.files)}  events: {report.events:,}  findings: {report.findings}  "
          f"incidents: {len(report.incidents)}  time: {report.seconds:.2f} s ({rate:,.0f} events/s)")
    for f in report.files:
        skipped = sum(f.skipped.values())
        extra = (f"  skipped: {skipped} ({p(', '.join(f'{k}: {v}' for k, v in f.skipped.items()))})"
                 if skipped else "")
        print(f"  {p(f.path)} [{p(f.format)}]: {f.events:,} events{extra}")
    if report.detector_failures:
        print(f"  detector failures: {p(str(report.detector_failures))}")
    if report.incidents:
        ordered = sorted(report.incidents, key=lambda i: (
            -severity_rank(i.verdict.severity if i.verdict else i.severity), i.id or 0))
        print()
        print(incidents_table([incident_json(i, with_findings=False) for i in ordered], p))
    suggestions, refused = report.suggestions, report.refused
    print()
    if suggestions:
        print(f"{len(suggestions)} suggestion(s) await review (watchstander suggestions list):")
        for sug in suggestions:
            params = ", ".join(f"{k}={v}" for k, v in sug.parameters.items())
            print(f"  #{sug.id} [{p(sug.state)}] incident {sug.incident_id}: {p(sug.playbook_id)} "
                  f"({p(sug.risk)} risk) {p(params)}")
    else:
        print("no suggestions")
    if refused:
        print(f"{len(refused)} recommended action(s) refused by the policy guard (watchstander audit export):")
        for d in refused[:20]:
            # Model output is attacker-influenced: shown escaped, never interpreted by the terminal.
            print(f"  {p(repr(str(d.playbook_id)[:80]))}: {p(str(d.reason))}"
                  + (f" ({p(repr(str(d.detail)[:120]))})" if d.detail else ""))


def cmd_replay(args: argparse.Namespace, ctx: Context) -> int:
    """Replay files and print what was found."""

    progress = _ProgressLine(not args.no_progress)
    try:
        report = replay(ctx.app, args.files, ctx.identity, progress)
    finally:
        progress.done()
    if args.format == "json":
        data = report.as_dict()
        data["incidents"] = [incident_json(i, with_findings=False) for i in report.incidents]
        print(dump_json(data))
    else:
        print_summary(report)
    return EXIT_OK


