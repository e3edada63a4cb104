"""`watchstander guidance ...`: the deadline tracker's commands, and the glue between the store and guidance/.

Guidance errors are translated here, at the boundary, into the agent's own (and so exit statuses).
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import logging
import sys
import time as time_mod
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from watchstander.guidance import extractor
from watchstander.guidance.catalogue import load_catalogue_file
from watchstander.guidance.dates import parse_iso_date
from watchstander.guidance.errors import CatalogueError, GuidanceError
from watchstander.guidance.evidence import resolve_evidence
from watchstander.guidance.reminders import install_reminder_job
from watchstander.guidance.rules import parse_rule
from watchstander.guidance.tracker import STATUSES

from ..app.compliance import (
    EXPORT_FORMATS,
    add_obligation,
    export_bytes,
    guidance_errors,
    load_all,
    obligation_data,
    record_event,
    run_reminders,
    status_data,
    update_obligation,
    write_file,
)
from ..control.client import via_daemon_or_local
from ..control.guidance_methods import evidence_params
from ..errors import EXIT_FAILURE, EXIT_OK, InputError, WatchstanderError
from ..store.guidance import SITE_CATALOGUE
from .context import Context
from .output import dump_json

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, Context], int]


def _translated(fn: Handler) -> Handler:
    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace, ctx: Context) -> int:
        with guidance_errors():
            return fn(args, ctx)
    return wrapper


def _date_arg(value: str) -> date:
    try:
        parsed: date = parse_iso_date(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date in YYYY-MM-DD form") from exc
    return parsed


# -- registration ---------------------------------------------------------------------------------

def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the guidance command group."""
    p = sub.add_parser("guidance", parents=[parent], help="EO 14409 guidance deadlines and reports",
                       description="Track the obligations of EO 14409 and the memoranda that followed it: "
                                   "due dates, owners, evidence, reminders and reports.")
    gs = p.add_subparsers(dest="guidance_command", metavar="ACTION", required=True)

    st = gs.add_parser("status", parents=[parent], help="obligations due, overdue or done on a day")
    st.add_argument("--as-of", type=_date_arg, metavar="DATE", help="report date (default today)")
    st.add_argument("--format", choices=("table", "json"), default="table")
    st.add_argument("--order", action="append", metavar="ID", help="only this catalogue (repeatable), e.g. eo14409")
    st.add_argument("--relevant", action="store_true", help="only obligations where the organisation leads or is consulted")
    st.add_argument("--as-recorded", action="store_true",
                    help="use the state as it had been recorded by the end of --as-of (replayed from the audit chain)")
    st.set_defaults(handler=cmd_status)

    sh = gs.add_parser("show", parents=[parent], help="one obligation in full, with its audit history")
    sh.add_argument("id", metavar="ID")
    sh.add_argument("--as-of", type=_date_arg, metavar="DATE")
    sh.add_argument("--format", choices=("text", "json"), default="text")
    sh.set_defaults(handler=cmd_show)

    up = gs.add_parser("update", parents=[parent], help="change status, owner, evidence, notes or due date",
                       description="Every change is recorded in the audit chain.")
    up.add_argument("id", metavar="ID")
    up.add_argument("--status", choices=STATUSES)
    up.add_argument("--owner", metavar="NAME", help="who answers for it ('' clears)")
    up.add_argument("--evidence", action="append", default=[], metavar="PATH|URL",
                    help="a file (stored with its SHA-256) or an http(s) URL; repeatable")
    up.add_argument("--note", metavar="TEXT")
    up.add_argument("--due", type=_date_arg, metavar="DATE", help="override the computed due date (needs --reason)")
    up.add_argument("--reason", metavar="TEXT", help="why the due date is overridden")
    up.add_argument("--clear-due", action="store_true", help="drop a due-date override")
    up.add_argument("--completed-on", type=_date_arg, metavar="DATE",
                    help="the day it was completed (with --status complete; default today)")
    up.set_defaults(handler=cmd_update)

    ev = gs.add_parser("event", parents=[parent], help="record the day an anchor event happened",
                       description="Dependent deadlines that count from an event (e.g. nspm11-waiver-granted) "
                                   "get their due date once the event is recorded.")
    ev.add_argument("name", metavar="NAME")
    ev.add_argument("--date", type=_date_arg, required=True, metavar="DATE")
    ev.add_argument("--note", metavar="TEXT")
    ev.set_defaults(handler=cmd_event)

    ad = gs.add_parser("add", parents=[parent], help="add a site follow-on obligation (implementing guidance)")
    ad.add_argument("id", metavar="ID", help="new stable id, e.g. dow-impl-2b-01")
    ad.add_argument("--order", default=SITE_CATALOGUE, metavar="CATALOGUE",
                    help="catalogue it belongs to; its rules count from that order's date (default: site)")
    ad.add_argument("--section", required=True, help="section label, e.g. 2(b) or 3(d)(i)")
    ad.add_argument("--title", required=True)
    ad.add_argument("--clause", help="opening words of the clause (default: the title)")
    ad.add_argument("--lead", action="append", default=[], metavar="OFFICIAL")
    ad.add_argument("--consulted", action="append", default=[], metavar="OFFICIAL")
    ad.add_argument("--all-agencies", action="store_true", help="binds every agency")
    ad.add_argument("--deliverable", required=True)
    ad.add_argument("--deadline", default="none", metavar="RULE",
                    help="e.g. '30 days after order', '10 days after eo14409-2b', 'on 2026-07-15', 'annually from order'")
    ad.add_argument("--implements", metavar="ID", help="the obligation this one implements")
    ad.add_argument("--notes")
    ad.set_defaults(handler=cmd_add)

    ex = gs.add_parser("export", parents=[parent], help="write a report: csv, json, html, pdf or oscal-poam")
    ex.add_argument("--format", choices=EXPORT_FORMATS, required=True)
    ex.add_argument("--out", type=Path, required=True, metavar="FILE")
    ex.add_argument("--as-of", type=_date_arg, metavar="DATE")
    ex.add_argument("--order", action="append", metavar="ID", help="only this catalogue (repeatable)")
    ex.add_argument("--title", help="report title")
    ex.add_argument("--as-recorded", action="store_true",
                    help="use the state as it had been recorded by the end of --as-of (replayed from the audit chain)")
    ex.set_defaults(handler=cmd_export)

    rm = gs.add_parser("remind", parents=[parent], help="send due reminders now, or run the daily schedule")
    rm.add_argument("--as-of", type=_date_arg, metavar="DATE")
    rm.add_argument("--dry-run", action="store_true", help="print what would be sent; send and record nothing")
    rm.add_argument("--serve", action="store_true", help="stay running and send reminders daily (APScheduler)")
    rm.set_defaults(handler=cmd_remind)

    ca = gs.add_parser("catalogues", parents=[parent], help="list catalogues, or validate catalogue files")
    ca.add_argument("--validate", nargs="+", type=Path, metavar="FILE", help="validate these catalogue files")
    ca.set_defaults(handler=cmd_catalogues)

    xt = gs.add_parser("extract", parents=[parent], help="draft a catalogue from an order's text for human review")
    xt.add_argument("file", type=Path, metavar="FILE")
    xt.add_argument("--signed", type=_date_arg, required=True, metavar="YYYY-MM-DD")
    xt.add_argument("--format", choices=("yaml", "json"), default="yaml")
    xt.set_defaults(handler=cmd_extract)


def _today(ctx: Context) -> date:
    return ctx.clock().date()


# -- commands -------------------------------------------------------------------------------------

def _table(rows: Sequence[dict[str, Any]]) -> list[str]:
    headers = ("DUE", "DAYS", "STANDING", "ORDER", "SEC.", "ID", "OWNER", "TITLE")
    data = []
    for r in rows:
        due = r["due"] or "—"
        if r["due_flag"]:
            due += "*"
        data.append((due, "" if r["days_left"] is None else str(r["days_left"]), r["standing_label"],
                     r["order"], r["section"], r["id"], r["owner"] or "-", r["title"]))
    widths = [max(len(h), *(len(d[i]) for d in data)) if data else len(h) for i, h in enumerate(headers)]
    widths[-1] = len(headers[-1])
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    return [fmt.format(*headers)] + [fmt.format(*d) for d in data]


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


@_translated
def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    """Print every obligation's standing on a day."""
    as_of = args.as_of or _today(ctx)
    params = {"as_of": as_of.isoformat(), "orders": args.order, "as_recorded": args.as_recorded}
    data: dict[str, Any] = via_daemon_or_local(
        ctx, "guidance.status", params,
        lambda who: status_data(ctx.query_app, as_of, args.order, as_recorded=args.as_recorded))
    rows = data["obligations"]
    if args.relevant:
        rows = [r for r in rows if r["relevance"] != "awareness"]
    if args.format == "json":
        print(dump_json({**data, "obligations": rows}))
        return EXIT_OK
    summary = data["summary"]
    print(f"Guidance status as of {data['as_of']} — {summary['organization']}")
    print(summary["verdict"])
    mine = [r for r in rows if r["relevance"] != "awareness"]
    others = [r for r in rows if r["relevance"] == "awareness"]
    for heading, group in ((f"\n{summary['organization']} leads, is consulted, or all agencies ({len(mine)}):", mine),
                           (f"\nFor awareness ({len(others)}):", others)):
        if group:
            print(heading)
            print("\n".join(_table(group)))
    if any(r["due_flag"] for r in rows):
        print("\n* due date falls on a weekend or federal holiday (flagged, not moved)")
    return EXIT_OK


@_translated
def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    """Print one obligation in full with its audit history."""
    as_of = args.as_of or _today(ctx)
    data: dict[str, Any] = via_daemon_or_local(
        ctx, "guidance.show", {"id": args.id, "as_of": as_of.isoformat()},
        lambda who: obligation_data(ctx.query_app, args.id, as_of))
    if args.format == "json":
        print(dump_json(data))
        return EXIT_OK
    row, history = data["obligation"], data["history"]
    print(f"{row['order']} Sec. {row['section']} — {row['title']}  [{row['id']}]")
    print(f"  clause:      “{row['clause']} …”")
    print(f"  lead:        {'; '.join(row['lead']) or 'all agencies / not named'}")
    if row["consulted"]:
        print(f"  consulted:   {'; '.join(row['consulted'])}")
    print(f"  deliverable: {row['deliverable']}")
    print(f"  deadline:    {row['rule']}  ({row['basis']})")
    print(f"  due:         {row['due'] or '—'}" + (f"  (falls on {row['due_flag']})" if row["due_flag"] else ""))
    print(f"  standing:    {row['standing_label']} on {as_of.isoformat()}; status {row['status_label']}; "
          f"owner {row['owner'] or '-'}")
    for e in row["evidence"]:
        print(f"  evidence:    {e['ref']}" + (f"  sha256 {e['sha256']}" if e["sha256"] else "")
              + f"  ({e['added_by']}, {e['added_at']})")
    for n in row["notes"]:
        print(f"  note:        {n}")
    if history:
        print("  history:")
        for h in history:
            details = {k: v for k, v in h.items() if k not in ("seq", "time", "actor", "action")}
            print(f"    #{h['seq']} {h['time']} {h['actor']} {h['action']} {json.dumps(details, ensure_ascii=False)}")
    return EXIT_OK


@_translated
def cmd_update(args: argparse.Namespace, ctx: Context) -> int:
    """Apply one audited update to an obligation."""
    evidence = [resolve_evidence(e) for e in args.evidence]  # hashed here: the daemon cannot read our files
    params = {"id": args.id, "status": args.status, "owner": args.owner, "note": args.note,
              "evidence": evidence_params(evidence), "due": _iso(args.due), "reason": args.reason,
              "clear_due": args.clear_due, "completed_on": _iso(args.completed_on)}
    state: dict[str, Any] = via_daemon_or_local(
        ctx, "guidance.update", params,
        lambda who: {"state": update_obligation(
            ctx.app, args.id, who, status=args.status, owner=args.owner, note=args.note, evidence=evidence,
            due=args.due, reason=args.reason, clear_due=args.clear_due,
            completed_on=args.completed_on).model_dump(mode="json")})["state"]
    print(f"{args.id}: status {state['status']}, owner {state['owner'] or '-'}, "
          f"{len(state['evidence'])} evidence item(s)"
          + (f", due overridden to {state['due_override']}" if state["due_override"] else ""))
    for e in evidence:
        print(f"  evidence {e.ref}" + (f" sha256 {e.sha256}" if e.sha256 else ""))
    return EXIT_OK


@_translated
def cmd_event(args: argparse.Namespace, ctx: Context) -> int:
    """Record an anchor event."""
    params = {"name": args.name, "date": args.date.isoformat(), "note": args.note}
    referenced = via_daemon_or_local(
        ctx, "guidance.event", params,
        lambda who: {"referenced": record_event(ctx.app, args.name, args.date, who, args.note)})["referenced"]
    print(f"event {args.name} recorded on {args.date.isoformat()}")
    if not referenced:
        print(f"warning: no obligation counts from event {args.name!r}", file=sys.stderr)
    return EXIT_OK


@_translated
def cmd_add(args: argparse.Namespace, ctx: Context) -> int:
    """Add a site follow-on obligation after validating it against the catalogue set."""
    parse_rule(args.deadline)  # a syntax error is reported here, before anything is sent
    fields: dict[str, Any] = {
        "id": args.id, "section": args.section, "title": args.title, "clause": args.clause or args.title,
        "lead": list(args.lead), "consulted": list(args.consulted), "all_agencies": args.all_agencies,
        "deliverable": args.deliverable, "deadline": args.deadline, "implements": args.implements,
        "notes": args.notes}
    via_daemon_or_local(ctx, "guidance.add", {"order": args.order, "obligation": fields},
                        lambda who: {"id": add_obligation(ctx.app, args.order, dict(fields), who).id})
    print(f"added {args.id} to {args.order} ({args.section}, deadline {args.deadline})")
    return EXIT_OK


@_translated
def cmd_export(args: argparse.Namespace, ctx: Context) -> int:
    """Write one report file."""
    as_of = args.as_of or _today(ctx)
    params = {"format": args.format, "as_of": as_of.isoformat(), "orders": args.order, "title": args.title,
              "as_recorded": args.as_recorded}

    def local(who: str) -> dict[str, Any]:
        content, count = export_bytes(ctx.query_app, args.format, as_of, args.order, args.title,
                                      args.as_recorded, actor=who)
        return {"content_b64": base64.b64encode(content).decode("ascii"), "obligations": count}

    data: dict[str, Any] = via_daemon_or_local(ctx, "guidance.export", params, local)
    write_file(args.out, base64.b64decode(data["content_b64"]))
    print(f"wrote {args.out} ({args.format}, as of {as_of.isoformat()}, {data['obligations']} obligations)")
    return EXIT_OK


@_translated
def cmd_remind(args: argparse.Namespace, ctx: Context) -> int:
    """Send today's reminders once, or keep sending them daily."""
    if args.serve:
        return _serve_reminders(ctx)
    as_of = args.as_of or _today(ctx)
    reminders, result = run_reminders(ctx.app, as_of, dry_run=args.dry_run)
    for m in reminders:
        print(f"{m.key:<22} {m.headline}")
    if not reminders:
        print(f"no reminders due on {as_of.isoformat()}")
    if not args.dry_run:
        for channel, n in result.sent.items():
            print(f"{channel}: {n} sent")
        for channel, err in result.failed.items():
            print(f"{channel}: FAILED: {err}", file=sys.stderr)
    return EXIT_FAILURE if result.failed else EXIT_OK


def _serve_reminders(ctx: Context) -> int:
    from apscheduler.schedulers.background import BackgroundScheduler

    cfg = ctx.config.guidance.reminders

    def job() -> None:
        try:
            run_reminders(ctx.app, _today(ctx))
        except (WatchstanderError, GuidanceError) as exc:
            log.error("guidance reminder run failed: %s", exc)

    from zoneinfo import ZoneInfo

    scheduler = BackgroundScheduler(timezone=ZoneInfo(cfg.timezone))
    install_reminder_job(scheduler, job, cfg)
    scheduler.start()
    log.info("guidance reminders scheduled daily at %02d:%02d %s", cfg.hour, cfg.minute, cfg.timezone)
    try:
        while True:
            time_mod.sleep(3600)
    finally:
        scheduler.shutdown(wait=False)


@_translated
def cmd_catalogues(args: argparse.Namespace, ctx: Context) -> int:
    """List the catalogues in use, or validate the files given."""
    if args.validate:
        bad = 0
        for path in args.validate:
            try:
                cat = load_catalogue_file(path)
            except CatalogueError as exc:
                bad += 1
                print(f"{path}: INVALID", file=sys.stderr)
                for where, what in exc.problems:
                    print(f"  {where}: {what}", file=sys.stderr)
                continue
            print(f"{path}: ok ({cat.display_name}, {len(cat.obligations)} obligations)")
        return EXIT_FAILURE if bad else EXIT_OK
    for cat in load_all(ctx.query_app):
        signed = cat.signed.isoformat() if cat.signed else "n/a"
        print(f"{cat.id:<10} {cat.display_name:<10} signed {signed}  {len(cat.obligations):>3} obligations  {cat.title}")
    return EXIT_OK


def cmd_extract(args: argparse.Namespace, ctx: Context) -> int:
    """Run the extractor over an order's text and print a draft catalogue for review."""
    try:
        text_in = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {args.file}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{args.file} is not UTF-8 text") from exc
    try:
        items = extractor.extract(text_in, args.signed)
        if args.format == "json":
            print(extractor.to_json(items))
        else:
            meta = extractor.read_order_meta(text_in).model_copy(update={"signed": args.signed})
            print(extractor.to_yaml_catalogue(items, meta), end="")
    except (GuidanceError, ValueError) as exc:
        raise InputError(f"cannot extract from {args.file}: {exc}") from exc
    return EXIT_OK
