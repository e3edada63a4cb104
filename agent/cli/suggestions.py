"""`watchstander suggestions ...`: list, show, approve, reject and edit suggested actions.

Every command is one `suggestions.*` control method run by `review_call`. With a daemon answering
on `[control] socket`, the request goes over the socket: the daemon acts as the identity it
authenticated from the peer credentials and checks the method's role. Without one (replay, demo),
the same `review_call` runs in-process as the invoking OS user (`ctx.identity`, from the real uid)
with no role check. Both modes print the same output and exit with the same status; a name given
on the command line or in the environment is never an identity.

`--local` (forensics on a copy of the store) only reads: list and show run in-process even when a
daemon answers; approve, reject and edit are refused (exit 77) -- deciding goes through the daemon,
or, with none running, in-process without `--local`. list and show open the store read-only, so
a user who may read the store file but not write it can still run them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from watchstander.playbooks import Catalogue, Playbook, UnknownPlaybookError
from watchstander.playbooks.inputs import IntegerInput

from ..control.client import via_daemon_or_local
from ..control.errors import RemoteError, error_code
from ..control.review_methods import MAX_LIST, review_call
from ..errors import EXIT_OK, Exit, InputError, WatchstanderError
from ..policy.errors import (
    AlreadyDecided,
    ApprovalRefused,
    BindingBroken,
    ConcurrentUpdate,
    DuplicateApprover,
    IllegalTransition,
    ParametersRefused,
    ParametersTampered,
    PlaybookChanged,
    RequesterCannotApprove,
    ReviewError,
    SuggestionExpired,
    SuggestionNotFound,
    SuggestionSuperseded,
)
from ..policy.review import ReviewQueue
from ..store.suggestions import STATES
from .context import Context
from .output import dump_json, printable

LOCAL_HELP = ("read the store file named by the config in-process and read-only, even when a daemon is "
              "running (forensics on a copy of the store); approve, reject and edit refuse it")
DEFAULT_LIMIT = 500
# The methods that only read: they open the store read-only, and they are all `--local` allows.
READ_ONLY_METHODS = frozenset({"suggestions.list", "suggestions.show"})


class LocalIsReadOnly(WatchstanderError):
    """`--local` is for forensics on a copy of the store: it reads, it never decides."""

    exit_status = Exit.NOPERM


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the suggestions command group."""
    p = sub.add_parser("suggestions", parents=[parent], help="review suggested actions: approve, reject, edit")
    ssub = p.add_subparsers(dest="suggestions_command", metavar="ACTION", required=True)

    ls = ssub.add_parser("list", parents=[parent], help="suggestions, newest first")
    ls.add_argument("--state", choices=STATES, help="only suggestions in this state")
    ls.add_argument("--incident", type=int, metavar="ID", help="only suggestions for this incident")
    ls.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                    help=f"at most N suggestions (1 to {MAX_LIST}, default {DEFAULT_LIMIT})")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(handler=cmd_list)

    show = ssub.add_parser("show", parents=[parent], help="one suggestion with its parameters and approvals")
    show.add_argument("id", type=int)
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(handler=cmd_show)

    approve = ssub.add_parser("approve", parents=[parent],
                              help="approve as yourself (high risk needs two people); audited")
    approve.add_argument("id", type=int)
    approve.add_argument("--comment", default="", help="kept with the approval")
    approve.set_defaults(handler=cmd_approve)

    reject = ssub.add_parser("reject", parents=[parent], help="reject with a reason; audited")
    reject.add_argument("id", type=int)
    reject.add_argument("--reason", required=True, help="why (kept with the record)")
    reject.set_defaults(handler=cmd_reject)

    edit = ssub.add_parser("edit", parents=[parent],
                           help="replace a pending suggestion with changed parameters (needs a new approval)")
    edit.add_argument("id", type=int)
    edit.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE", required=True,
                      help="a changed parameter (repeatable); list inputs take comma-separated values")
    edit.add_argument("--comment", default="", help="why the parameters changed")
    edit.set_defaults(handler=cmd_edit)

    for action in (ls, show, approve, reject, edit):
        action.add_argument("--local", action="store_true", help=LOCAL_HELP)


def build_queue(ctx: Context, catalogue: Catalogue | None = None, *, read_only: bool = False) -> ReviewQueue:
    """The composition root's review queue over ctx's store (its guard on the current catalogue, or the one given).

    `read_only`: over the store opened read-only, for list and show.
    """
    return (ctx.query_app if read_only else ctx.app).review_queue(catalogue)


def _review_error_codes() -> dict[str, type[ReviewError]]:
    """Review errors by the wire code a daemon reports them with (a duplicate code raises)."""
    codes: dict[str, type[ReviewError]] = {}
    for cls in (ReviewError, SuggestionNotFound, IllegalTransition, AlreadyDecided, SuggestionSuperseded,
                SuggestionExpired, ApprovalRefused, RequesterCannotApprove, DuplicateApprover, BindingBroken,
                ParametersTampered, PlaybookChanged, ParametersRefused, ConcurrentUpdate):
        code = error_code(cls(""))
        if code in codes:
            raise RuntimeError(f"{codes[code].__name__} and {cls.__name__} share the wire code {code!r}")
        codes[code] = cls
    return codes


# So that a command fails with the same type and exit status over the socket as in-process
# (SuggestionExpired exits 7 either way).
REVIEW_ERRORS = _review_error_codes()


def _typed(exc: RemoteError) -> ReviewError | None:
    """The review error a daemon's failure stands for, with its details and exit status; else None."""
    cls = REVIEW_ERRORS.get(exc.code)
    if cls is None:
        return None
    sid = exc.details.get("suggestion_id")
    typed = cls(str(exc), sid if isinstance(sid, int) and not isinstance(sid, bool) else None)
    for key, value in exc.details.items():
        if key != "suggestion_id" and key in vars(typed):
            setattr(typed, key, value)
    typed.exit_status = exc.exit_status
    return typed


def refuse_local_decision(method: str) -> None:
    """Raise LocalIsReadOnly unless `method` only reads."""
    if method not in READ_ONLY_METHODS:
        raise LocalIsReadOnly(f"--local is read-only (forensics on a copy of the store): {method.split('.')[-1]} "
                              "goes through the daemon, or, with no daemon running, runs without --local")


def review(ctx: Context, method: str, params: dict[str, Any], *, local: bool = False,
           catalogue: Catalogue | None = None, read_only: bool | None = None) -> dict[str, Any]:
    """Run one suggestions.* method through the daemon when one answers, else in-process as ctx.identity.

    In-process, a method that only reads uses the read-only store unless `read_only` is False
    (an edit reads the suggestion through the store it is about to write). `local` refuses
    every method that decides.
    """
    if local:
        refuse_local_decision(method)
    reader = method in READ_ONLY_METHODS if read_only is None else read_only

    def in_process(who: str) -> dict[str, Any]:
        return review_call(build_queue(ctx, catalogue, read_only=reader), method, who, params)

    try:
        return via_daemon_or_local(ctx, method, params, in_process, local=local)
    except RemoteError as exc:
        typed = _typed(exc)
        if typed is None:
            raise
        raise typed from exc


def parse_params(items: list[str], playbook: Playbook | None) -> dict[str, object]:
    """NAME=VALUE pairs; a list input's value is split on commas, an integer input's kept as text."""
    out: dict[str, object] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--param {item!r}: expected NAME=VALUE")
        if name in out:
            raise InputError(f"--param {name} given twice")
        spec = playbook.spec.inputs.get(name) if playbook is not None else None
        if spec is not None and spec.many:
            out[name] = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(spec, IntegerInput) and value.strip().lstrip("+-").isdigit():
            out[name] = int(value.strip())
        else:
            out[name] = value
    return out


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(params.items()))


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    """Print suggestions (the method expires any that are due first, so states shown are current)."""

    if not 1 <= args.limit <= MAX_LIST:
        raise InputError(f"--limit must be from 1 to {MAX_LIST}")
    params: dict[str, Any] = {"limit": args.limit}
    if args.state is not None:
        params["state"] = args.state
    if args.incident is not None:
        params["incident"] = args.incident
    items: list[dict[str, Any]] = review(ctx, "suggestions.list", params, local=args.local)["suggestions"]
    if args.format == "json":
        print(dump_json({"suggestions": items}))
        return EXIT_OK
    headers = ("ID", "STATE", "INC", "RISK", "APPR", "PLAYBOOK", "PARAMETERS")
    table = [headers] + [
        (str(s["id"]), printable(str(s["state"])) + ("!" if s["flags"] else ""), str(s["incident_id"] or "-"),
         printable(str(s["risk"])), f"{len(s['approvals'])}/{s['approvals_required']}",
         printable(s["playbook_id"], 40), printable(_params_text(s["parameters"]), 80))
        for s in items]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    if any(s["flags"] for s in items):
        print("\n! flagged: the model behind it also recommended something the guard refused", file=sys.stderr)
    return EXIT_OK


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    """Print one suggestion."""

    answer = review(ctx, "suggestions.show", {"id": args.id}, local=args.local)
    s: dict[str, Any] = answer["suggestion"]
    if args.format == "json":
        print(dump_json({**s, "will_run": answer.get("will_run"), "will_run_error": answer.get("will_run_error")}))
        return EXIT_OK
    print(f"suggestion #{s['id']}: {printable(s['playbook_id'])} [{printable(s['state'])}]")
    print(f"  incident:   {s['incident_id'] if s['incident_id'] is not None else '-'}")
    print(f"  risk:       {printable(s['risk'])} (needs {s['approvals_required']} distinct approver(s), "
          "not the requester)")
    print(f"  playbook:   v{s['playbook_version']} sha256 {printable(s['playbook_hash'])}")
    print(f"  parameters: sha256 {printable(s['params_sha256'])}")
    for name, value in sorted(s["parameters"].items()):
        print(f"    {printable(str(name))} = {printable(json.dumps(value, ensure_ascii=False))}")
    print(f"  requester:  {printable(s['requester'])} ({printable(s['source'])}, {printable(s['origin'])})")
    print(f"  created:    {s['created_at']}")
    print(f"  expires:    {s['expires_at']}")
    if s["decided_by"]:
        print(f"  decided by: {printable(s['decided_by'])}{': ' + printable(s['reason']) if s['reason'] else ''}")
    if s["supersedes"]:
        print(f"  replaces:   #{s['supersedes']}")
    if s["superseded_by"]:
        print(f"  replaced by: #{s['superseded_by']}")
    for flag in s["flags"]:
        print(f"  FLAG:       {printable(flag)}")
    print(f"  justification (from the analyst; not verified): {printable(s['justification'], 2000)}")
    for a in s["approvals"]:
        print(f"  approved by {printable(a['approver'])} at {a['approved_at']}"
              f"{': ' + printable(a['comment']) if a['comment'] else ''}")
    if answer.get("will_run") is not None:
        print("  will run (exactly these commands, in this order; rollback only if a step or post-check fails):")
        for st in answer["will_run"]:
            print(f"    {printable(st['section']):<11} {printable(st['step'])}: {printable(st['command'], 2000)}")
    elif answer.get("will_run_error"):
        print(f"  will run:   nothing: {printable(answer['will_run_error'])}")
    return EXIT_OK


def cmd_approve(args: argparse.Namespace, ctx: Context) -> int:
    """Approve as yourself; says how many more approvers a high-risk suggestion still needs."""
    s: dict[str, Any] = review(ctx, "suggestions.approve", {"id": args.id, "comment": args.comment},
                               local=args.local)["suggestion"]
    if s["state"] == "approved":
        print(f"suggestion #{s['id']} approved ({len(s['approvals'])}/{s['approvals_required']}); "
              f"bound to playbook sha256 {printable(s['playbook_hash'][:12])} and parameters sha256 "
              f"{printable(s['params_sha256'][:12])}")
    else:
        print(f"approval recorded for suggestion #{s['id']} ({len(s['approvals'])}/{s['approvals_required']}); "
              f"another person must approve it too")
    return EXIT_OK


def cmd_reject(args: argparse.Namespace, ctx: Context) -> int:
    """Reject with a reason, as yourself."""
    if not args.reason.strip():
        raise InputError("--reason must not be empty")
    s: dict[str, Any] = review(ctx, "suggestions.reject", {"id": args.id, "reason": args.reason},
                               local=args.local)["suggestion"]
    print(f"suggestion #{s['id']} rejected")
    return EXIT_OK


def cmd_edit(args: argparse.Namespace, ctx: Context) -> int:
    """Create a new suggestion with changed parameters that supersedes the old one."""
    if args.local:
        refuse_local_decision("suggestions.edit")  # before the catalogue is read
    # The playbook's input types say how to read NAME=VALUE (lists, integers); the catalogue is
    # read here for that only -- the queue checks the parameters against its own copy.
    catalogue = ctx.app.catalogue()
    old: dict[str, Any] = review(ctx, "suggestions.show", {"id": args.id}, catalogue=catalogue,
                                 read_only=False)["suggestion"]
    try:
        playbook: Playbook | None = catalogue.get(old["playbook_id"])
    except UnknownPlaybookError:
        playbook = None
    params = {"id": args.id, "changes": parse_params(args.params, playbook), "comment": args.comment}
    new: dict[str, Any] = review(ctx, "suggestions.edit", params, catalogue=catalogue)["suggestion"]
    print(f"suggestion #{new['id']} replaces #{old['id']}: {printable(_params_text(new['parameters']))}; "
          f"it needs {new['approvals_required']} approver(s) other than you")
    return EXIT_OK
