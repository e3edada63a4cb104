"""`watchstander incidents list|show`: what the store holds, most severe first."""

from __future__ import annotations

import argparse
from typing import Any

from ..app.incident_view import incident_json, incidents_table
from ..errors import EXIT_OK, NotFoundError
from ..store.incidents import IncidentStore
from .context import Context
from .output import dump_json


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the incidents command."""
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


def cmd_incidents_list(args: argparse.Namespace, ctx: Context) -> int:
    """List incidents."""

    items = IncidentStore(ctx.store, ctx.clock).list(limit=args.limit)
    if args.format == "json":
        print(dump_json([incident_json(i, with_findings=False) for i in items]))
    elif items:
        print(incidents_table(items))
    else:
        print("no incidents")
    return EXIT_OK


def cmd_incidents_show(args: argparse.Namespace, ctx: Context) -> int:
    """Show one incident."""

    inc = IncidentStore(ctx.store, ctx.clock).get(args.id)
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


