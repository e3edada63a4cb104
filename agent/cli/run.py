"""`watchstander run`: the daemon and its control socket, until SIGTERM or SIGINT; SIGHUP reloads."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from ..config.load import load_config
from ..config.model import AgentConfig
from ..console.health import daemon_health
from ..console.server import ConsoleServer
from ..control.wiring import build_control_server
from ..daemon.daemon import Daemon
from ..daemon.metrics import start_metrics
from ..daemon.store_access import is_network_store, store_write_problem
from ..errors import EXIT_OK, Exit, StoreError
from ..store.schema import open_store, server_answers
from .context import Context

log = logging.getLogger(__name__)


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the run command."""
    run = sub.add_parser("run", parents=[parent], help="run the daemon (syslog, files, SNMP, SSH collection, capture)",
                         description="Runs until SIGTERM/SIGINT: receives syslog over UDP/TCP and follows the "
                                     "files in [sources], detects, correlates, triages and stores incidents "
                                     "every [sources] flush_s seconds. SIGHUP reloads the configuration, "
                                     "playbooks and guidance catalogues (refused, and logged, if invalid). "
                                     f"Exits {int(Exit.STORE)} before reporting ready when the store cannot "
                                     "be written.")
    run.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the daemon until a signal stops it."""
    # Before opening the store: a file we cannot write must stop start-up with its owner and mode named.
    problem = store_write_problem(ctx.config.store.resolved_url())
    if problem is not None:
        log.error("cannot start: %s", problem)
        return Exit.STORE
    url = ctx.config.store.resolved_url()
    if is_network_store(url):
        try:
            ctx.store  # noqa: B018  (opened and migrated now when the server answers)
        except StoreError as exc:
            if server_answers(url):  # it answers, yet cannot be migrated (rights, a newer schema): stop here
                log.error("cannot start: %s", exc)
                return Exit.STORE
            # A sensor whose PostgreSQL is away still detects: findings are spooled on local disk and
            # the daemon migrates and delivers once the server answers (docs/deployment.md).
            log.error("the store does not answer (%s); starting anyway, findings are spooled until it does", exc)
            ctx.use_store(open_store(url, migrate=False))
    try:
        daemon = Daemon(ctx.app)
        control = build_control_server(ctx.app)
        # [console] enabled: the web console, over the same services as the control socket.
        console = (ConsoleServer(ctx.app, ctx.config.console, health=lambda: daemon_health(daemon),
                                 runs_service=lambda: daemon.runs) if ctx.config.console.enabled else None)

        def reload() -> AgentConfig:
            if console is not None:
                console.reload()  # the CRL file again; listener and certificates need a restart
            return load_config(ctx.config_path)

        async def serve() -> None:
            await control.start()
            if console is not None:
                await console.start()
            metrics = start_metrics(daemon)  # [metrics] enabled; off by default, loopback when on
            try:
                await daemon.run_until_signalled(reload=reload)
            finally:
                metrics.stop()
                if console is not None:
                    await console.stop()
                await control.stop()

        asyncio.run(serve())
    except StoreError as exc:
        log.error("cannot start: %s", exc)
        return Exit.STORE
    except OSError as exc:  # the console's listener (sources report their own bind failures)
        log.error("cannot start: %s", exc.strerror or exc)
        return Exit.FAILURE
    return EXIT_OK
