"""`watchstander playbooks ...`: list, show, validate, approve and revoke playbook definitions.

`approve` is the control method `playbooks.approve` (admin role): with a daemon answering on
`[control] socket` it goes over the socket as the caller the daemon authenticated; without one it
runs in-process as the invoking OS user. Either way a high-risk definition needs two distinct
people (counted by uid): the first approval is recorded as pending.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from watchstander.playbooks import (
    Catalogue,
    Playbook,
    PlaybookValidationError,
    Problem,
    UnknownPlaybookError,
    load_library,
    load_playbook,
)
from watchstander.playbooks.catalogue import playbook_files
from watchstander.playbooks.loader import describe_problems
from watchstander.playbooks.runner import describe

from ..control.client import via_daemon_or_local
from ..control.playbook_methods import approve_definition
from ..errors import EXIT_INPUT, EXIT_OK, InputError, NotFoundError
from ..store.approvals import ApprovalStatus, ApprovalStore
from .context import Context
from .output import dump_json, printable


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the playbooks command group."""
    p = sub.add_parser("playbooks", parents=[parent], help="list, validate and approve playbooks")
    psub = p.add_subparsers(dest="playbooks_command", metavar="ACTION", required=True)

    dirs = argparse.ArgumentParser(add_help=False)
    dirs.add_argument("--dir", dest="dirs", action="append", type=Path, default=[], metavar="DIR",
                      help="also load playbooks from DIR (repeatable; added to the configured folders)")

    ls = psub.add_parser("list", parents=[parent, dirs], help="the catalogue and the approval status of each")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(handler=cmd_list)

    show = psub.add_parser("show", parents=[parent, dirs], help="one playbook, its status and approvals")
    show.add_argument("ref", metavar="ID|PATH")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(handler=cmd_show)

    val = psub.add_parser("validate", parents=[parent],
                          help="check playbook files (or folders of them); exit 4 naming file:line:key on errors")
    val.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    val.add_argument("--format", choices=("text", "json"), default="text")
    val.set_defaults(handler=cmd_validate)

    approve = psub.add_parser("approve", parents=[parent, dirs],
                              help="approve a playbook's exact content (hash) as an admin; high risk needs "
                                   "two people; audited")
    approve.add_argument("ref", metavar="PATH|ID")
    approve.add_argument("--comment", default="", help="why it is approved (kept with the approval)")
    approve.set_defaults(handler=cmd_approve)

    dry = psub.add_parser("dry-run", parents=[parent, dirs],
                          help="render every command of every step for these parameters; contacts nothing")
    dry.add_argument("ref", metavar="ID|PATH")
    dry.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                     help="an input value (repeatable; a list input takes VALUE,VALUE,...)")
    dry.add_argument("--format", choices=("text", "json"), default="text")
    dry.set_defaults(handler=cmd_dry_run)

    revoke = psub.add_parser("revoke", parents=[parent], help="withdraw a playbook's approval; audited")
    revoke.add_argument("playbook_id", metavar="ID")
    revoke.add_argument("--hash", dest="content_hash", metavar="SHA256",
                        help="only the approval of this content (default: every current one)")
    revoke.add_argument("--reason", default="", help="why (kept with the record)")
    revoke.set_defaults(handler=cmd_revoke)


def configured_dirs(ctx: Context) -> list[Path]:
    """Playbook folders from the config's [playbooks] dirs."""
    return [Path(d) for d in ctx.config.playbooks.dirs]


def _catalogue(args: argparse.Namespace, ctx: Context) -> Catalogue:
    # Extra folders on the command line make a catalogue of their own; otherwise the agent's.
    return load_library([*configured_dirs(ctx), *args.dirs]) if args.dirs else ctx.app.catalogue()


def _approvals(ctx: Context) -> ApprovalStore:
    return ctx.app.approvals


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(str(problem), file=sys.stderr)


def _load_path(path: Path) -> Playbook:
    try:
        return load_playbook(path)
    except PlaybookValidationError as exc:
        _print_problems(exc.problems)
        raise InputError(f"{path}: not a valid playbook ({len(exc.problems)} problem(s))") from None


def _looks_like_path(ref: str) -> bool:
    return "/" in ref or ref.endswith((".yaml", ".yml")) or Path(ref).is_file()


def _resolve(ref: str, catalogue: Catalogue) -> Playbook:
    if _looks_like_path(ref):
        return _load_path(Path(ref))
    try:
        return catalogue.get(ref)
    except UnknownPlaybookError as exc:
        raise NotFoundError(str(exc)) from None


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    """Print every playbook in the catalogue with its approval status."""

    catalogue = _catalogue(args, ctx)
    store = _approvals(ctx)
    rows: list[dict[str, Any]] = []
    for playbook in catalogue:
        current = store.current(playbook)
        rows.append({
            "id": playbook.id, "version": playbook.version, "title": playbook.title, "risk": playbook.risk,
            "status": store.status(playbook).value, "content_hash": playbook.content_hash,
            "source": playbook.source, "requires_approval": playbook.requires_approval,
            "approved_by": ", ".join(current.approvers) if current else None,
            "approved_at": current.approved_at if current else None,
        })
    if args.format == "json":
        print(dump_json({"playbooks": rows, "problems": describe_problems(catalogue.problems)}))
        return EXIT_OK
    headers = ("ID", "VER", "RISK", "STATUS", "TITLE")
    table = [headers] + [(r["id"], str(r["version"]), r["risk"], r["status"], r["title"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    if catalogue.problems:
        print(f"\n{len(catalogue.problems)} problem(s) kept files out of the catalogue:", file=sys.stderr)
        _print_problems(catalogue.problems)
    return EXIT_OK


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    """Print one playbook (by id or path) with its status and approval history."""

    playbook = _resolve(args.ref, _catalogue(args, ctx))
    store = _approvals(ctx)
    status = store.status(playbook)
    history = store.approvals(playbook.id)
    if args.format == "json":
        print(dump_json({
            "playbook": playbook.spec.model_dump(mode="json"), "content_hash": playbook.content_hash,
            "source": playbook.source, "status": status.value, "requires_approval": playbook.requires_approval,
            "approvals": [asdict(a) for a in history],
        }))
        return EXIT_OK
    spec = playbook.spec
    print(f"{spec.id} v{spec.version}: {spec.title}")
    print(f"  risk:     {spec.risk}")
    print(f"  status:   {status.value}")
    print(f"  sha256:   {playbook.content_hash}")
    print(f"  source:   {playbook.source}")
    print(f"  timeout:  {spec.timeout_s} s")
    print(f"  operator approval per run: {'yes' if playbook.requires_approval else 'no'}")
    print(f"\n{spec.description}\n\ninputs:")
    for name, inp in spec.inputs.items():
        info = inp.describe()
        extras = ", ".join(f"{k}={v}" for k, v in info.items() if k not in ("type", "description", "required"))
        print(f"  {name}: {info['type']}{' (' + extras + ')' if extras else ''} - {info['description']}")
    for section, index, step in playbook.all_steps():
        if index == 0:
            print(f"\n{section}:")
        print(f"  {step.id}: {step.action} {json.dumps(step.args, ensure_ascii=False)}")
    if history:
        print("\napprovals (newest first):")
        for a in history:
            if a.current:
                state = "current" if a.complete else "awaiting another approver"
            else:
                state = f"ended {a.revoked_at} by {a.revoked_by}: {a.revoke_reason}"
            who = ", ".join(printable(name) for name in a.approvers) or printable(a.approver)
            print(f"  #{a.id} {a.approved_at} {who} ({len(a.approvers)} of {a.required}) "
                  f"sha256 {a.content_hash[:12]} [{state}] {printable(a.comment)}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace, ctx: Context) -> int:
    """Validate files (and folders of files); exit 4 when any is invalid."""

    files: list[Path] = []
    for path in args.paths:
        files.extend(playbook_files(path) if path.is_dir() else [path])
    results: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for file in files:
        try:
            playbook = load_playbook(file)
        except PlaybookValidationError as exc:
            problems.extend(exc.problems)
            results.append({"file": str(file), "ok": False, "problems": describe_problems(exc.problems)})
            continue
        results.append({"file": str(file), "ok": True, "id": playbook.id, "version": playbook.version,
                        "content_hash": playbook.content_hash})
    if args.format == "json":
        print(dump_json(results))
    else:
        for result in results:
            if result["ok"]:
                print(f"ok      {result['file']}  {result['id']} v{result['version']} "
                      f"sha256 {result['content_hash'][:12]}")
            else:
                print(f"INVALID {result['file']}")
        _print_problems(problems)
    return EXIT_INPUT if problems or not files else EXIT_OK


def cmd_approve(args: argparse.Namespace, ctx: Context) -> int:
    """Approve the exact content of one playbook, as the invoking user."""
    catalogue = _catalogue(args, ctx)
    playbook = _resolve(args.ref, catalogue)
    if playbook.id in catalogue:
        listed = catalogue.get(playbook.id)
        if Path(listed.source).resolve() != Path(playbook.source).resolve():
            raise InputError(f"playbook id {playbook.id!r} is provided by {listed.source}; "
                             f"approving {playbook.source} would disable that one")
    else:
        print(f"warning: {playbook.source} is not in the shipped library or a configured folder, "
              "so the agent will not offer it", file=sys.stderr)
    params = {"id": playbook.id, "content_hash": playbook.content_hash, "comment": args.comment}
    result: dict[str, Any] = via_daemon_or_local(
        ctx, "playbooks.approve", params,
        lambda who: approve_definition(_approvals(ctx), playbook, who, args.comment))
    a = result["approval"]
    who = ", ".join(printable(str(name)) for name in a["approvers"])
    count = f"{len(a['approvers'])} of {a['required']}"
    if result["already"]:
        print(f"{playbook.id} sha256 {playbook.content_hash} is already approved "
              f"(#{a['id']}, {count}, by {who} at {a['approved_at']})")
        return EXIT_OK
    if a["complete"]:
        print(f"approved {playbook.id} v{playbook.version} sha256 {playbook.content_hash} "
              f"(#{a['id']}, {count}, by {who})")
    else:
        print(f"approval recorded for {playbook.id} v{playbook.version} sha256 {playbook.content_hash} "
              f"(#{a['id']}, {count}, by {who}); another person must approve this content too")
    if result["before"] == ApprovalStatus.CHANGED.value:
        print("the previously approved content of this id is no longer approved", file=sys.stderr)
    return EXIT_OK


def cmd_revoke(args: argparse.Namespace, ctx: Context) -> int:
    """Withdraw the current approvals of one playbook id."""
    revoked = _approvals(ctx).revoke(args.playbook_id, ctx.identity, args.reason, args.content_hash)
    if not revoked:
        raise NotFoundError(f"no current approval for playbook {args.playbook_id!r}")
    for a in revoked:
        print(f"revoked #{a.id} {a.playbook_id} sha256 {a.content_hash}")
    return EXIT_OK


def parse_params(pairs: list[str], playbook: Playbook) -> dict[str, Any]:
    """NAME=VALUE pairs as parameters; a list input splits on commas. InputError on a malformed pair."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"--param {pair!r}: expected NAME=VALUE")
        spec = playbook.spec.inputs.get(name)
        out[name] = value.split(",") if spec is not None and spec.many else value
    return out


def cmd_dry_run(args: argparse.Namespace, ctx: Context) -> int:
    """Print what a run would send to each device, with the site's pinned values and inventory applied."""
    playbook = _resolve(args.ref, _catalogue(args, ctx))
    checked = ctx.query_app.guard().check_parameters(playbook, parse_params(args.params, playbook))
    if isinstance(checked, tuple):
        raise InputError(f"{playbook.id}: parameters refused: {checked[0]} ({checked[1]})")
    steps = playbook.render(checked, ctx.query_app.devices)
    rows = [{"section": st.section, "step": st.id, "action": st.action, "target": st.target,
             "command": describe(st), "timeout_s": st.timeout_s,
             "expect": st.expect.model_dump(exclude_none=True) if st.expect else None} for st in steps]
    revert_s = playbook.revert_after_s(checked)
    if args.format == "json":
        print(dump_json({"playbook": playbook.id, "content_hash": playbook.content_hash, "parameters": checked,
                         "revert_after_s": revert_s, "steps": rows}))
        return EXIT_OK
    print(f"dry run of {playbook.id} v{playbook.version} (sha256 {playbook.content_hash[:12]}); nothing is contacted")
    for name, value in sorted(checked.items()):
        print(f"  {name} = {printable(json.dumps(value))}")
    for row in rows:
        print(f"  {row['section']:<11} {row['step']} [{row['timeout_s']} s]: {printable(str(row['command']), 2000)}")
        if row["expect"]:
            print(f"  {'':<11}   expect {printable(json.dumps(row['expect']))}")
    if revert_s:
        print(f"  the rollback runs by itself {revert_s // 60} minute(s) after a successful run")
    return EXIT_OK
