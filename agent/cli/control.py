"""`watchstander control ping|whoami`: is the daemon there, and who does it think I am."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..control.client import ControlClient, via_daemon_or_local
from ..errors import EXIT_OK
from .context import Context


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the `control` command group."""
    ctl = sub.add_parser("control", parents=[parent], help="talk to the running daemon's control socket")
    ctl_sub = ctl.add_subparsers(dest="control_command", metavar="ACTION", required=True)
    ping = ctl_sub.add_parser("ping", parents=[parent],
                              help="ask the daemon to answer; exit 69 when none runs, 77 without a role")
    ping.add_argument("--format", choices=("text", "json"), default="text")
    ping.set_defaults(handler=cmd_ping)
    who = ctl_sub.add_parser("whoami", parents=[parent],
                             help="the identity and roles the daemon sees (or the local user, without one)")
    who.add_argument("--format", choices=("text", "json"), default="text")
    who.set_defaults(handler=cmd_whoami)


def cmd_ping(args: argparse.Namespace, ctx: Context) -> int:
    """Ping the daemon (DaemonNotRunning propagates: exit 69)."""
    control = ctx.config.control
    result = ControlClient(control.socket, control.timeout_s).call("ping", {})
    if args.format == "json":
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"daemon pid {result['pid']} answers on {control.socket} (protocol {result['protocol']}); "
              f"you may call: {', '.join(result['methods'])}")
    return EXIT_OK


def cmd_whoami(args: argparse.Namespace, ctx: Context) -> int:
    """Print the authenticated identity, or the local one in no-daemon mode."""
    result: dict[str, Any] = via_daemon_or_local(
        ctx, "whoami", {}, lambda who: {"principal": who, "roles": None, "mode": "local"})
    result.setdefault("mode", "daemon")
    if args.format == "json":
        print(json.dumps(result, sort_keys=True))
    elif result["mode"] == "local":
        print(f"{result['principal']} (no daemon running: in-process mode, no role checks)")
    else:
        print(f"{result['principal']} roles: {', '.join(result['roles']) or 'none'} "
              f"groups: {', '.join(result['groups'])}")
    return EXIT_OK
