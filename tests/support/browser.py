"""Debian's Chromium driven by Playwright's sync API, with real client certificates (mutual TLS) per person.

How trust works here, without `ignore_https_errors`:

- A context with `client_certificates` sends its requests for that origin through Playwright's own
  TLS proxy (in the Node driver), which makes the handshake with the server and presents the client
  certificate. That proxy checks the server against Node's CA store, so the driver is started with
  `NODE_EXTRA_CA_CERTS` naming the test CA (without it every page is "Playwright client-certificate
  error: self-signed certificate in certificate chain").
- A context without client certificates talks to the server directly, so Chromium itself must trust
  the server: `--ignore-certificate-errors-spki-list` pins the server key (and only that key).

The sync API runs its own event loop in this thread while started: a test using it must not call
`asyncio.run` until `close()` (start servers on their own threads or as subprocesses).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page, Playwright

    from support.pki import Person

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CHROMIUM = "/usr/bin/chromium"
DEFAULT_TIMEOUT_MS = 10_000
PROXY_ERROR = "Playwright client-certificate error"


def chromium_path() -> str:
    """Debian's Chromium ($WATCHSTANDER_CHROMIUM or /usr/bin/chromium), or skip the test saying what is missing."""
    path = os.environ.get("WATCHSTANDER_CHROMIUM", DEFAULT_CHROMIUM)
    if not (Path(path).is_file() and os.access(path, os.X_OK)) and shutil.which(path) is None:
        pytest.skip(f"Chromium not found at {path}: `apt-get install chromium` (or set WATCHSTANDER_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright Python package is not installed (test extra); no `playwright install` needed")
    return path


def screenshot_dir() -> Path:
    """Where screenshots go: $WATCHSTANDER_SCREENSHOTS, or test-artifacts/screenshots/ under the repository."""
    configured = os.environ.get("WATCHSTANDER_SCREENSHOTS")
    path = Path(configured) if configured else REPO / "test-artifacts" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def spki_pin(cert: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate: what Chromium's SPKI allow-list takes."""
    public = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


@dataclass
class Tab:
    """A page plus what it said: JS errors, console lines (CSP violations land here) and dialogs opened."""

    page: Page
    person: str
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def watch(self) -> Tab:
        """Record page errors, console messages and dialogs (dismissing them)."""
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)
        self.page.on("dialog", self._dialog)
        return self

    def _console(self, message: ConsoleMessage) -> None:
        self.console.append(f"{message.type}: {message.text}")

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


def handshake_refusal(page: Page, url: str) -> str | None:
    """Why `url` could not be loaded over TLS (Chromium's net:: error, or the error page of Playwright's
    client-certificate proxy), or None when the server answered.

    With TLS 1.3 the client finishes its handshake before the server has checked the certificate,
    so a refusal reaches the proxy either during its handshake (it then serves its own error page)
    or as the connection closing on the first request (Chromium then reports net::ERR_...).
    """
    from playwright.sync_api import Error

    try:
        page.goto(url)
    except Error as exc:
        return exc.message
    body = page.inner_text("body")
    return body if PROXY_ERROR in body else None


class ConsoleBrowser:
    """One headless Chromium; a fresh context (its own cookies and certificate) per person."""

    def __init__(self, playwright: Playwright, browser: Browser, shots: Path) -> None:
        self.playwright = playwright
        self.browser = browser
        self.shots = shots

    def context(self, origin: str, person: Person | None = None, pfx: bool = False) -> BrowserContext:
        """A context presenting `person`'s certificate to `origin` (none: no client certificate at all)."""
        options: dict[str, Any] = {"viewport": {"width": 1280, "height": 900}, "accept_downloads": True}
        if person is not None:
            options["client_certificates"] = [person.playwright(origin.rstrip("/"), pfx=pfx)]
        context = self.browser.new_context(**options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        return context

    def tab(self, origin: str, person: Person | None = None, pfx: bool = False) -> Tab:
        """A new page in a new context for `person`, watched for errors, console lines and dialogs."""
        page = self.context(origin, person, pfx).new_page()
        return Tab(page, person.name if person else "(no certificate)").watch()

    def shot(self, page: Page, name: str) -> Path:
        """A full-page screenshot named `name`.png in the screenshot folder."""
        path = self.shots / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        """Close the browser (and with it every context) and the driver."""
        self.browser.close()
        self.playwright.stop()


@contextmanager
def launch(trusted_ca: Path, server_cert: Path, shots: Path | None = None) -> Iterator[ConsoleBrowser]:
    """Start the driver trusting `trusted_ca` and Chromium pinning `server_cert`'s key; close on exit."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    saved = os.environ.get("NODE_EXTRA_CA_CERTS")
    os.environ["NODE_EXTRA_CA_CERTS"] = str(trusted_ca)  # read once, by the driver process started now
    try:
        playwright = sync_playwright().start()
    finally:
        if saved is None:
            del os.environ["NODE_EXTRA_CA_CERTS"]
        else:
            os.environ["NODE_EXTRA_CA_CERTS"] = saved
    try:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox",  # CI runs the tests as root, where Chromium refuses its sandbox
                  "--disable-dev-shm-usage",  # containers give /dev/shm 64 MB
                  f"--ignore-certificate-errors-spki-list={spki_pin(server_cert)}"])
    except BaseException:
        playwright.stop()
        raise
    console = ConsoleBrowser(playwright, browser, shots or screenshot_dir())
    try:
        yield console
    finally:
        console.close()
