"""Factory fixtures: a console served by uvicorn with TLS on 127.0.0.1, over a real SQLite store, with demo certificates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.console_kit import ConsoleSite, MovableClock

from watchstander.agent.console.demo_pki import DemoCertificates, make_demo_pki


@pytest.fixture(scope="module")
def demo_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoCertificates:
    """One demo PKI per module (CA, loopback server certificate, the demo people): keys take time to make."""
    return make_demo_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def site_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated store with the library approved, made once and copied by every site."""
    folder = tmp_path_factory.mktemp("console-template")
    site = ConsoleSite.create(folder, pki=make_demo_pki(folder / "pki"))
    site.stop()
    return folder


@pytest.fixture
def site_factory(tmp_path: Path, demo_pki: DemoCertificates,
                 site_template: Path) -> Iterator[Callable[..., ConsoleSite]]:
    """Factory: a started console site (store, App, console); keyword arguments go to ConsoleSite.create/start."""
    sites: list[ConsoleSite] = []

    def make(*, start: bool = True, clock: MovableClock | None = None, console: dict[str, Any] | None = None,
             extra_roles: dict[str, Any] | None = None, **start_kwargs: Any) -> ConsoleSite:
        folder = tmp_path / f"site{len(sites)}"
        site = ConsoleSite.create(folder, clock=clock, console=console, extra_roles=extra_roles, pki=demo_pki,
                                   template=site_template)
        sites.append(site)
        if start:
            site.start(**start_kwargs)
        return site

    yield make
    for site in sites:
        site.stop()


@pytest.fixture
def site(site_factory: Callable[..., ConsoleSite]) -> ConsoleSite:
    """A started console with the default demo roles."""
    return site_factory()
