"""`watchstander incidents list|show|ack|assign|comment|close|reopen|notes`: incidents and their lifecycle.

list and show read what the store holds (list: most severe first, filtered by status, severity,
detector, free text). ack, assign, comment, close and reopen are `incidents.*` control methods run
by `incident_call`: through the daemon (operator role, acting as the socket's peer) when one
answers, else in-process as the invoking OS user, exactly like `suggestions approve`. `--local`
only reads. Exit statuses (agent/errors.py): 0 done; 4 a bad disposition, assignee or text; 5 no
such incident; 6 its status does not allow it (already closed, not closed...); 11 another change
won a race; 69 the daemon did not answer; 77 your role does not allow it.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..app.incident_view import incidents_table
from ..control.client import via_daemon_or_local
from ..control.errors import RemoteError, error_code
from ..control.incident_methods import READ_ONLY_METHODS, incident_call
from ..control.read_methods import incidents_list, incidents_show
from ..errors import (
    EXIT_OK,
    Exit,
    IncidentConcurrentUpdate,
    IncidentError,
    IncidentInputError,
    IncidentNotFound,
    IncidentTransitionError,
    NotFoundError,
    WatchstanderError,
)
from ..models import SEVERITIES
from ..store.incidents import DISPOSITIONS, STATUSES
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


LOCAL_HELP = "read the store in-process even when a daemon runs (forensics on a copy); changes refuse it"
_INCIDENT_ERRORS: dict[str, type[IncidentError]] = {
    error_code(cls("")): cls
    for cls in (IncidentError, IncidentNotFound, IncidentTransitionError, IncidentInputError, IncidentConcurrentUpdate)
}


class LocalIsReadOnly(WatchstanderError):
    """`--local` is for forensics on a copy of the store: it reads, it never changes an incident."""

    exit_status = Exit.NOPERM


def _comma_list(allowed: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if not items or bad:
            raise argparse.ArgumentTypeError(f"expected one or more of {', '.join(allowed)} (comma-separated)")
        return items
    return parse


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the incidents command."""
    inc = sub.add_parser("incidents", parents=[parent], help="list, show and work incidents (ack, assign, close...)")
    inc_sub = inc.add_subparsers(dest="incidents_command", metavar="ACTION", required=True)
    ls = inc_sub.add_parser("list", parents=[parent], help="incidents, most severe first")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.add_argument("--limit", type=list_limit, default=1000, metavar="N",
                    help=f"at most N incidents (1 to {MAX_LIMIT:,}; default 1000)")
    ls.add_argument("--status", type=_comma_list(STATUSES), metavar="STATUS[,STATUS]",
                    help=f"only incidents in these statuses ({', '.join(STATUSES)})")
    ls.add_argument("--severity", choices=SEVERITIES, metavar="LEVEL",
                    help=f"only this severity or above ({', '.join(SEVERITIES)})")
    ls.add_argument("--detector", metavar="ID", help="only incidents with a finding from this detector")
    ls.add_argument("--search", metavar="TEXT", help="only incidents whose title or entity contains TEXT")
    ls.add_argument("--sensor", metavar="NAME", help="only incidents a finding of which came from this sensor "
                                                      "([agent] name; many sensors share a PostgreSQL store)")
    ls.add_argument("--local", action="store_true",
                    help="read the store in-process even when a daemon runs (forensics on a copy)")
    ls.set_defaults(handler=cmd_incidents_list)
    show = inc_sub.add_parser("show", parents=[parent], help="one incident with its findings and verdict")
    show.add_argument("id", type=whole_number, metavar="ID")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.add_argument("--local", action="store_true",
                      help="read the store in-process even when a daemon runs (forensics on a copy)")
    show.set_defaults(handler=cmd_incidents_show)

    ack = inc_sub.add_parser("ack", parents=[parent], help="acknowledge an open incident as yourself; audited")
    ack.add_argument("id", type=whole_number, metavar="ID")
    ack.set_defaults(handler=cmd_lifecycle, method="incidents.ack")
    assign = inc_sub.add_parser("assign", parents=[parent],
                                help="assign an open or acknowledged incident to someone; audited")
    assign.add_argument("id", type=whole_number, metavar="ID")
    who = assign.add_mutually_exclusive_group(required=True)
    who.add_argument("--to", dest="assignee", metavar="NAME", help="the person (name or uid:N:name)")
    who.add_argument("--nobody", action="store_true", help="remove the assignee")
    assign.set_defaults(handler=cmd_lifecycle, method="incidents.assign")
    comment = inc_sub.add_parser("comment", parents=[parent], help="add a comment (any status); audited")
    comment.add_argument("id", type=whole_number, metavar="ID")
    comment.add_argument("text", metavar="TEXT", help="the comment (at most 4000 characters, no control characters)")
    comment.set_defaults(handler=cmd_lifecycle, method="incidents.comment")
    close = inc_sub.add_parser("close", parents=[parent], help="close with a disposition and a reason; audited")
    close.add_argument("id", type=whole_number, metavar="ID")
    close.add_argument("--disposition", required=True, choices=DISPOSITIONS,
                       help="what it was; a closed false_positive stays closed when its activity continues")
    close.add_argument("--reason", required=True, help="why (kept as a note and in the audit log)")
    close.set_defaults(handler=cmd_lifecycle, method="incidents.close")
    reopen = inc_sub.add_parser("reopen", parents=[parent], help="reopen a closed incident with a reason; audited")
    reopen.add_argument("id", type=whole_number, metavar="ID")
    reopen.add_argument("--reason", required=True, help="why (kept as a note and in the audit log)")
    reopen.set_defaults(handler=cmd_lifecycle, method="incidents.reopen")
    notes = inc_sub.add_parser("notes", parents=[parent], help="the incident's comments and transition notes")
    notes.add_argument("id", type=whole_number, metavar="ID")
    notes.add_argument("--format", choices=("text", "json"), default="text")
    notes.set_defaults(handler=cmd_lifecycle, method="incidents.notes")
    for action in (ack, assign, comment, close, reopen, notes):
        action.add_argument("--local", action="store_true", help=LOCAL_HELP)


def cmd_incidents_list(args: argparse.Namespace, ctx: Context) -> int:
    """List incidents: through the daemon (viewer role) when one runs, else from the store."""
    params: dict[str, Any] = {"limit": args.limit}
    for key, value in (("status", args.status), ("min_severity", args.severity), ("detector", args.detector),
                       ("search", args.search), ("sensor", args.sensor)):
        if value is not None:
            params[key] = value
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
    life = data.get("lifecycle")
    if life:
        closed = (f", closed as {p(life['disposition'] or '-')} by {p(life['closed_by'] or '-')} at {life['closed_at']}"
                  if life["status"] == "closed" else "")
        print(f"  assignee {p(life['assignee'] or '-')}{closed}")
        if life["activity_after_close"]:
            print(f"  activity continued after closing ({life['activity_after_close']} update(s))")
    print(f"  detectors: {p(', '.join(data['detectors']))}   ATT&CK: {p(', '.join(data['attack_techniques']))}")
    if data.get("sensors"):
        print(f"  sensors: {p(', '.join(data['sensors']))}")
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
    for n in data.get("notes", []):
        print(f"  note {n['time'][:19]} {p(n['principal'])} [{p(n['kind'])}]: {p(n['text'], 4000)}")
    return EXIT_OK


def _typed(exc: RemoteError) -> IncidentError | None:
    """The lifecycle error a daemon's failure stands for, with its reason and exit status; else None."""
    cls = _INCIDENT_ERRORS.get(exc.code)
    if cls is None:
        return None
    iid, reason, state = (exc.details.get(k) for k in ("incident_id", "reason", "state"))
    typed = cls(str(exc), iid if isinstance(iid, int) and not isinstance(iid, bool) else None,
                reason if isinstance(reason, str) else None, state if isinstance(state, str) else None)
    typed.exit_status = exc.exit_status
    return typed


def lifecycle(ctx: Context, method: str, params: dict[str, Any], *, local: bool = False) -> dict[str, Any]:
    """Run one incidents.* lifecycle method through the daemon when one answers, else in-process as ctx.identity."""
    reads = method in READ_ONLY_METHODS
    if local and not reads:
        raise LocalIsReadOnly(f"--local is read-only (forensics on a copy of the store): {method.split('.')[-1]} "
                              "goes through the daemon, or, with no daemon running, runs without --local")

    def in_process(who: str) -> dict[str, Any]:
        app = ctx.query_app if reads else ctx.app
        return incident_call(app.incident_lifecycle(), method, who, params)

    try:
        return via_daemon_or_local(ctx, method, params, in_process, local=local)
    except RemoteError as exc:
        typed = _typed(exc)
        if typed is None:
            raise
        raise typed from exc


def cmd_lifecycle(args: argparse.Namespace, ctx: Context) -> int:
    """ack, assign, comment, close, reopen or notes, as yourself."""
    if not 1 <= args.id <= MAX_ID:
        raise IncidentNotFound(f"no incident with id {args.id}", None)
    method: str = args.method
    params: dict[str, Any] = {"id": args.id}
    if method == "incidents.assign":
        params["assignee"] = None if args.nobody else args.assignee
    elif method == "incidents.comment":
        params["text"] = args.text
    elif method == "incidents.close":
        params.update(disposition=args.disposition, reason=args.reason)
    elif method == "incidents.reopen":
        params["reason"] = args.reason
    answer = lifecycle(ctx, method, params, local=args.local)
    if method == "incidents.notes":
        if args.format == "json":
            print(dump_json(answer))
            return EXIT_OK
        for n in answer["notes"]:
            print(f"{n['time'][:19]}  {printable(n['principal'])}  [{printable(n['kind'])}]  "
                  f"{printable(n['text'], 4000)}")
        if not answer["notes"]:
            print("no notes")
        return EXIT_OK
    if method == "incidents.comment":
        print(f"comment #{answer['note']['id']} added to incident {args.id}")
        return EXIT_OK
    state = answer["incident"]
    extra = f" as {printable(state['disposition'])}" if state["status"] == "closed" else ""
    who = f", assigned to {printable(state['assignee'])}" if state["assignee"] else ""
    print(f"incident {state['id']} is {printable(state['status'])}{extra}{who}")
    return EXIT_OK
