"""`watchstander store migrate --to URL`: move this host's store (SQLite) into another, e.g. the shared PostgreSQL."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..app.store_copy import copy_store
from ..errors import EXIT_FAILURE, EXIT_OK, InputError
from ..store.schema import open_store
from .context import Context


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the `store` command group."""
    p = sub.add_parser("store", parents=[parent], help="move the store to another database")
    ssub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    mig = ssub.add_parser(
        "migrate", parents=[parent], help="copy every row of the configured store into a new, empty one",
        description="Copies incidents, the review queue, approvals, runs, the audit log and the tracker with "
                    "their ids, in one transaction on the target, then compares row counts and verifies the "
                    "audit chain there. Stop the daemon first; afterwards point [store] url at the target.")
    mig.add_argument("--to", required=True, metavar="URL",
                     help="the target, e.g. postgresql+psycopg://watchstander@db.example.mil/watchstander"
                          "?sslmode=verify-full (a password belongs in PGPASSFILE, not the URL)")
    mig.set_defaults(handler=cmd_migrate)


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError as exc:
        raise InputError(f"--to is not a database URL: {exc}") from exc


def cmd_migrate(args: argparse.Namespace, ctx: Context) -> int:
    """Copy the configured store into the --to store."""
    source_url, target_url = ctx.config.store.resolved_url(), args.to
    shown = _shown(target_url)  # a URL that does not parse is refused here, before anything is opened
    if make_url(source_url) == make_url(target_url):
        raise InputError("--to names the configured store itself")

    def progress(table: str, done: int, total: int) -> None:
        if done == total:
            print(f"  {table:<28} {done:>10} rows", file=sys.stderr)

    print(f"copying {_shown(source_url)} -> {shown}", file=sys.stderr)
    target = open_store(target_url)
    try:
        report = copy_store(ctx.store, target, ctx.clock, progress)
    finally:
        target.close()
    print(f"copied {report.total} rows in {len(report.rows)} tables; audit chain on the target: "
          f"{'ok' if report.audit_ok else 'BROKEN'} ({report.audit_checked} records)")
    return EXIT_OK if report.audit_ok else EXIT_FAILURE
