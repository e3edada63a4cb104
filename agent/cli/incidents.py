"""`watchstander incidents list|show`: what the store holds, most severe first."""

from __future__ import annotations

import argparse
from typing import Any

from ..app.incident_view import incidents_table
from ..control.client import via_daemon_or_local
from ..control.read_methods import incidents_list, incidents_show
from ..errors import EXIT_OK, NotFoundError
from .context import Context
from .output import dump_json, printable

# Record ids are SQLite INTEGERs: signed 64-bit. A larger number names no record (and would
# overflow the driver), so it is "not found", not a traceback.
MAX_ID = 2**63 - 1
MAX_LIMIT = 1_000_000


def whole_number(text: str) -> int:
    """An argparse type: a whole number, refused clearly when it is not one."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {printable(text, 40)}") from None


def list_limit(text: str) -> int:
    """An argparse type: how many records to list, 1 to MAX_LIMIT."""
    n = whole_number(text)
    if not 1 <= n <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT:,}, got {printable(text, 40)}")
    return n


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the incidents command."""
    inc = sub.add_parser("incidents", parents=[parent], help="list and show incidents")
    inc_sub = inc.add_subparsers(dest="incidents_command", metavar="ACTION", required=True)
    ls = inc_sub.add_parser("list", parents=[parent], help="incidents, most severe first")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.add_argument("--limit", type=list_limit, default=1000, metavar="N",
                    help=f"at most N incidents (1 to {MAX_LIMIT:,}; default 1000)")
    ls.add_argument("--local", action="store_true",
                    help="read the store in-process even when a daemon runs (forensics on a copy)")
    ls.set_defaults(handler=cmd_incidents_list)
    show = inc_sub.add_parser("show", parents=[parent], help="one incident with its findings and verdict")
    show.add_argument("id", type=whole_number, metavar="ID")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.add_argument("--local", action="store_true",
                      help="read the store in-process even when a daemon runs (forensics on a copy)")
    show.set_defaults(handler=cmd_incidents_show)


def cmd_incidents_list(args: argparse.Namespace, ctx: Context) -> int:
    """List incidents: through the daemon (viewer role) when one runs, else from the store."""
    params = {"limit": args.limit}
    items = via_daemon_or_local(ctx, "incidents.list", params,
                                lambda _who: incidents_list(ctx.query_store, ctx.clock, params),
                                local=args.local)["incidents"]
    if args.format == "json":
        print(dump_json(items))
    elif items:
        print(incidents_table(items, printable))
    else:
        print("no incidents")
    return EXIT_OK


def cmd_incidents_show(args: argparse.Namespace, ctx: Context) -> int:
    """Show one incident."""
    if not 1 <= args.id <= MAX_ID:
        raise NotFoundError(f"no incident with id {args.id}")
    params = {"id": args.id}
    data: dict[str, Any] = via_daemon_or_local(
        ctx, "incidents.show", params, lambda _who: incidents_show(ctx.query_store, ctx.clock, params),
        local=args.local)["incident"]
    if args.format == "json":
        print(dump_json(data))
        return EXIT_OK
    # Titles, entities and evidence come from telemetry; summary, rationale and actions from the
    # model: every one is shown escaped, never interpreted by the terminal.
    p = printable
    print(f"Incident {data['id']}: {p(data['title'])}")
    print(f"  severity {p(data['severity'])} (detectors said {p(data['detector_severity'])}), "
          f"status {p(data['status'])}")
    print(f"  seen {data['first_seen']} .. {data['last_seen']}")
    print(f"  detectors: {p(', '.join(data['detectors']))}   ATT&CK: {p(', '.join(data['attack_techniques']))}")
    for role, values in data["entities"].items():
        print(f"  {p(role)}: {p(', '.join(values))}")
    print(f"  counts: {p(', '.join(f'{k}={v}' for k, v in data['counts'].items()))}")
    v = data["verdict"]
    if v:
        print(f"  verdict: {p(v['disposition'])} at confidence {v['confidence']} ({p(v['provenance']['analyst'])})")
        print(f"    {p(v['summary'])}")
        print(f"    why: {p(v['rationale'])}")
        for a, word in zip(v["recommended_actions"], data["guard"]):
            action = f"{p(a['playbook'])} {p(str(a['parameters']))}"
            if word is not None and not word["allowed"]:
                detail = f" ({p(word['detail'])})" if word["detail"] else ""
                print(f"    refused {action}: {p(word['reason'] or 'refused')}{detail}")
                print(f"      the analyst's reason: {p(a['justification'])}")
            else:
                unknown = "" if word is not None else " (no guard decision recorded)"
                print(f"    suggest {action}: {p(a['justification'])}{unknown}")
    for f in data["findings"]:
        print(f"  - [{p(f['detector'])}] {p(f['title'])} ({f['count']} events) "
              f"evidence: {p(', '.join(f['evidence'][:3]))}")
    return EXIT_OK
