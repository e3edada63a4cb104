"""Serving the console inside the daemon's event loop: uvicorn over our TLS context, started and stopped cleanly.

    server = ConsoleServer(app, config.console, health=lambda: daemon_health(daemon),
                           runs_service=lambda: daemon.runs)
    await server.start()          # listening once this returns (raises OSError / ConfigError otherwise)
    server.reload()               # on SIGHUP: the CRL file again
    await server.stop()

uvicorn's own signal handling is switched off (the daemon owns SIGTERM, SIGINT and SIGHUP), as
are its access log, proxy headers (the client address must be the socket's) and lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Generator

import uvicorn

from ..app.runs import RunService
from ..app.wiring import App
from ..config.console import ConsoleConfig
from .app import ConsoleApp, build_console
from .health import HealthProvider
from .tls import PeerCertificateProtocol, load_crl, server_context

log = logging.getLogger(__name__)

STOP_GRACE_S = 3


class _EmbeddedServer(uvicorn.Server):
    """uvicorn.Server that leaves the process's signals to the daemon."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """No signal handlers: the daemon stops the console through `should_exit`."""
        yield

    def install_signal_handlers(self) -> None:
        """Older uvicorn: no signal handlers either."""


def split_listen(listen: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' as (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class ConsoleServer:
    """The console's HTTPS listener, run as a task on the current event loop."""

    def __init__(self, app: App, config: ConsoleConfig, *, health: HealthProvider | None = None,
                 runs_service: Callable[[], RunService | None] | None = None, poll_s: float = 1.0) -> None:
        self.config = config
        self.context = server_context(config)  # a bad certificate, CA bundle or CRL stops start-up here
        self.asgi: ConsoleApp = build_console(app, config, health=health, runs_service=runs_service, poll_s=poll_s)
        host, port = split_listen(config.listen)
        self._uv = uvicorn.Config(self.asgi, host=host, port=port, http=PeerCertificateProtocol, ws="none",
                                  lifespan="off", log_config=None, access_log=False, proxy_headers=False,
                                  server_header=False, timeout_graceful_shutdown=STOP_GRACE_S)
        self._uv.load()
        self._uv.ssl = self.context  # our context: client certificates, CA bundles, CRL
        self.server = _EmbeddedServer(self._uv)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start listening; returns once the socket is bound (raises OSError naming the address if it cannot be)."""
        # Bound here, not by uvicorn: its bind failure is a sys.exit() inside our event loop.
        host, port = split_listen(self.config.listen)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"the console cannot listen on {self.config.listen}: {exc.strerror}") from None
        self._task = asyncio.create_task(self.server.serve(sockets=[sock]), name="console")
        while not self.server.started:
            if self._task.done():
                error = self._task.exception()
                raise error if error is not None else OSError(f"the console could not listen on {self.config.listen}")
            await asyncio.sleep(0.02)
        log.info("console listening on https://%s (auth %s)", self.url_host(), self.config.auth)

    @property
    def bound(self) -> tuple[str, int]:
        """The address the listener is bound to (the real port when the config said 0)."""
        for server in self.server.servers:
            for sock in server.sockets:
                name = sock.getsockname()
                return str(name[0]), int(name[1])
        return split_listen(self.config.listen)

    def url_host(self) -> str:
        """host:port for a URL (IPv6 in brackets)."""
        host, port = self.bound
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def url(self) -> str:
        """The console's base URL."""
        return f"https://{self.url_host()}/"

    def reload(self) -> None:
        """Load the CRL file again (on SIGHUP); a bad file is logged and the CRLs already loaded stay."""
        if self.config.crl is None or self.config.auth != "mtls":
            return
        try:
            load_crl(self.context, self.config.crl)
        except Exception as exc:  # noqa: BLE001  (a reload must never stop the console)
            log.error("console: CRL %s not reloaded: %s", self.config.crl, exc)
            return
        log.info("console: CRL %s reloaded", self.config.crl)

    async def stop(self) -> None:
        """End the live streams, stop listening, and wait (briefly) for requests in flight."""
        self.asgi.console.stopping.set()
        self.server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=STOP_GRACE_S + 5)
            except TimeoutError:
                self.server.force_exit = True
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None


async def serve(app_state: App, config: ConsoleConfig, *, health: HealthProvider | None = None,
                runs_service: Callable[[], RunService | None] | None = None,
                stop: asyncio.Event | None = None, reload_on_sighup: bool = False,
                ready: Callable[[ConsoleServer], None] | None = None) -> None:
    """Run the console until `stop` is set or the task is cancelled; then stop it cleanly.

    `reload_on_sighup` installs a SIGHUP handler that reloads the CRL (for a process whose SIGHUP
    nobody else handles, e.g. the demo); inside the daemon, its own SIGHUP handler calls `reload()`.
    """
    server = ConsoleServer(app_state, config, health=health, runs_service=runs_service)
    await server.start()
    loop = asyncio.get_running_loop()
    if reload_on_sighup:
        loop.add_signal_handler(signal.SIGHUP, server.reload)
    if ready is not None:
        ready(server)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        if reload_on_sighup:
            loop.remove_signal_handler(signal.SIGHUP)
        await server.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on `host` (for tests and benchmarks that need the port before starting)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
