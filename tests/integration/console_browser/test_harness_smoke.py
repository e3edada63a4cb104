"""The browser harness itself: Debian's Chromium presents a real client certificate (mutual TLS) through Playwright.

The server is Python's own TLS stack on 127.0.0.1 requiring a client certificate from the test CA
and checking the CA's CRL; it answers with the subject and SAN of the certificate it verified.
Proves: a mapped person's certificate reaches the server (PEM and PKCS#12 forms); no certificate,
a foreign CA's certificate and a revoked one are refused in the handshake; Chromium trusts the
server by its pinned key only (another key from the same CA is refused).
"""

from __future__ import annotations

import asyncio
import html
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import ConsoleBrowser, handshake_refusal
from support.pki import ConsolePki

pytestmark = [pytest.mark.integration, pytest.mark.browser]


class EchoServer:
    """HTTPS on 127.0.0.1:0 with CERT_REQUIRED; the page shows the verified peer's subject and SAN."""

    def __init__(self, pki: ConsolePki, cert: Path | None = None, key: Path | None = None) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
        self.context.load_cert_chain(str(cert or pki.server_cert), str(key or pki.server_key))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_verify_locations(str(pki.crl))
        self.context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mtls-echo", daemon=True)
        self.served: list[tuple[int, str]] = []  # (serial, issuer) of each certificate served
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            peer: Any = writer.get_extra_info("peercert") or {}
            subject = ",".join(f"{k}={v}" for rdn in peer.get("subject", ()) for k, v in rdn)
            sans = ";".join(f"{k}:{v}" for k, v in peer.get("subjectAltName", ()))
            issuer = ",".join(f"{k}={v}" for rdn in peer.get("issuer", ()) for k, v in rdn)
            self.served.append((int(peer.get("serialNumber", "0"), 16), issuer))
            path = request.split(b" ", 2)[1].decode("ascii", "replace")
            body = (f"<!doctype html><title>mTLS echo</title><h1>mutual TLS</h1><p>path {html.escape(path)}</p>"
                    f"<p id=subject>{html.escape(subject)}</p><p id=san>{html.escape(sans)}</p>").encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nConnection: close\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # a refused handshake or a probe that went away
        finally:
            writer.close()

    def start(self) -> EchoServer:
        """Listen and serve on a thread of its own (the sync Playwright API owns this thread's loop)."""
        self.thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context), self.loop).result(10)
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    @property
    def origin(self) -> str:
        """https://127.0.0.1:PORT"""
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Close the listener and the loop."""
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def echo(pki: ConsolePki) -> Iterator[EchoServer]:
    """The mTLS echo server for the module's PKI."""
    server = EchoServer(pki).start()
    yield server
    server.stop()


def _refused(browser: ConsoleBrowser, origin: str, person: Any) -> str:
    """Navigate and return why the handshake failed (the test fails if the page is served)."""
    reason = handshake_refusal(browser.tab(origin, person).page, origin + "/")
    assert reason is not None, f"served to {person.name if person else 'no certificate'}"
    return reason


def test_a_client_certificate_reaches_the_server_through_chromium(browser: ConsoleBrowser, echo: EchoServer,
                                                                  pki: ConsolePki) -> None:
    """The operator's CAC-like certificate: the server verified it and saw its CN and UPN/email SAN."""
    tab = browser.tab(echo.origin, pki.operator)
    response = tab.page.goto(echo.origin + "/whoami")
    assert response is not None and response.status == 200
    assert pki.operator.cn in tab.page.locator("#subject").inner_text()
    san = tab.page.locator("#san").inner_text()
    assert f"email:{pki.operator.email}" in san and "othername" in san.lower()
    assert browser.shot(tab.page, "harness-mtls-echo").stat().st_size > 0
    assert not tab.errors


def test_the_pkcs12_form_works_too(browser: ConsoleBrowser, echo: EchoServer, pki: ConsolePki) -> None:
    """`pfxPath` + passphrase instead of PEM files."""
    tab = browser.tab(echo.origin, pki.approver, pfx=True)
    tab.page.goto(echo.origin + "/")
    assert pki.approver.cn in tab.page.locator("#subject").inner_text()


def test_no_foreign_or_revoked_certificate_is_refused_in_the_handshake(browser: ConsoleBrowser, echo: EchoServer,
                                                                       pki: ConsolePki) -> None:
    """No certificate, another CA's, or one on the CRL: the handshake fails and no page is served."""
    for person in (None, pki.foreign, pki.revoked):
        message = _refused(browser, echo.origin, person)
        assert "net::ERR_" in message or "client-certificate error" in message, message
    assert all(serial != pki.revoked.serial and "Foreign" not in issuer for serial, issuer in echo.served)


def test_chromium_trusts_the_pinned_server_key_only(browser: ConsoleBrowser, pki: ConsolePki,
                                                    ) -> None:
    """A second server certificate from the same CA but another key is not trusted: no blanket ignore."""
    other_cert, other_key = pki.authority.server("other-key")
    server = EchoServer(pki, other_cert, other_key).start()
    try:
        message = _refused(browser, server.origin, None)
        assert "ERR_CERT_AUTHORITY_INVALID" in message, message
    finally:
        server.stop()
