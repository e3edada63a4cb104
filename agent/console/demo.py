"""`watchstander demo --console`: the console over the demo's store, with a demo PKI, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path

from ..app.wiring import App
from ..config.console import ConsoleConfig
from .demo_pki import DEMO_PEOPLE, P12_PASSWORD, DemoCertificates, make_demo_pki
from .server import ConsoleServer, serve


def demo_console_config(certs: DemoCertificates, listen: str = "127.0.0.1:8443") -> ConsoleConfig:
    """The [console] section for the demo: loopback, its CA, its CRL, its people's roles by UPN."""
    return ConsoleConfig(enabled=True, listen=listen, cert_file=certs.server.cert, key_file=certs.server.key,
                         client_ca=(certs.ca,), crl=certs.crl,
                         roles={p.upn: p.roles for p in DEMO_PEOPLE if p.roles})


def describe_demo(server: ConsoleServer, certs: DemoCertificates) -> str:
    """What a newcomer needs: the URL, the CA to trust, and each person's certificate."""
    lines = [f"Console: {server.url}  (Ctrl-C stops it)",
             f"Demo CA to trust: {certs.ca}",
             f"Client certificates in {certs.folder} (PKCS#12 password {P12_PASSWORD!r}; PEM .crt/.key beside them):"]
    for person in DEMO_PEOPLE:
        roles = ", ".join(person.roles) or "no roles: gets 403"
        lines.append(f"  {certs.people[person.label].p12.name:<16} {person.upn:<16} {roles}")
    lines.append("Import one into the browser (Chromium: Settings > Privacy and security > Security > "
                 "Manage certificates), then open the URL.")
    return "\n".join(lines)


async def serve_demo(app: App, folder: Path, *, listen: str = "127.0.0.1:8443",
                     announce: Callable[[str], None] = print) -> None:
    """Make the demo PKI in `folder`, serve the console over `app` until SIGINT/SIGTERM, then stop."""
    certs = make_demo_pki(folder, clock=app.clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(app, demo_console_config(certs, listen), stop=stop, reload_on_sighup=True,
                    ready=lambda server: announce(describe_demo(server, certs)))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
