"""`watchstander run`: the daemon and its control socket, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ..control.wiring import build_control_server
from ..daemon.daemon import Daemon
from ..errors import EXIT_OK
from .context import Context


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the run command."""
    run = sub.add_parser("run", parents=[parent], help="run the daemon (syslog listeners, followed files)",
                         description="Runs until SIGTERM/SIGINT: receives syslog over UDP/TCP and follows the "
                                     "files in [sources], detects, correlates, triages and stores incidents "
                                     "every [sources] flush_s seconds.")
    run.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the daemon until a signal stops it."""
    daemon = Daemon(ctx.app)
    control = build_control_server(ctx.app)

    async def serve() -> None:
        await control.start()
        try:
            await daemon.run_until_signalled()
        finally:
            await control.stop()

    asyncio.run(serve())
    return EXIT_OK


