"""Fixtures for the console's real-browser tests: one test PKI and one headless Chromium per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.browser import ConsoleBrowser, chromium_path, launch
from support.pki import ConsolePki, make_console_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ConsolePki:
    """A CA, a server certificate for 127.0.0.1, the people, an unmapped, a revoked and a foreign certificate."""
    return make_console_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def browser(pki: ConsolePki) -> Iterator[ConsoleBrowser]:
    """Headless Chromium trusting the test CA; skipped with the reason when Chromium or Playwright is missing."""
    chromium_path()
    with launch(pki.ca, pki.server_cert) as console:
        yield console

