"""Factory fixtures: an App over a real SQLite store, and a site whose daemon control server runs on a real socket."""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from support.incidents import make_app

from watchstander.agent.app.wiring import App
from watchstander.agent.cli.main import main
from watchstander.agent.clock import system_clock
from watchstander.agent.config.load import load_config
from watchstander.agent.control.identity import Identity, PeerCredentials
from watchstander.agent.control.wiring import build_control_server
from watchstander.agent.store.schema import open_store

OLGA = Identity(1001, "olga", frozenset({"wsoper"}), frozenset({"operator", "viewer"}))
VERA = Identity(1004, "vera", frozenset({"wsview"}), frozenset({"viewer"}))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """An App over a fresh, migrated SQLite file (the system clock: notes and audit need distinct times)."""
    made = make_app(tmp_path, system_clock)
    yield made
    made.close()
    made.store.close()


@dataclass
class Site:
    """A config file, its store and socket paths, and who the injected resolver says is calling."""

    config: Path
    db: Path
    socket: Path
    caller: Identity = OLGA

    def cli(self, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
        """`watchstander --config ... incidents ARGV` through the real main(); (status, out, err)."""
        status = main(["--config", str(self.config), "incidents", *argv])
        out = capsys.readouterr()
        return status, out.out, out.err

    def resolve(self, cred: PeerCredentials) -> Identity:
        """The injected resolver: the kernel's pid is real, the account is the one the test chose."""
        return replace(self.caller, pid=cred.pid)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A site config whose [control] socket lives in a short directory under /tmp (sun_path limit)."""
    short = Path(tempfile.mkdtemp(prefix="wsi", dir="/tmp"))
    sock = short / "run" / "control.sock"
    db = tmp_path / "w.db"
    group = grp.getgrgid(os.getgid()).gr_name
    config = tmp_path / "watchstander.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n[control]\nsocket = "{sock}"\nsocket_group = "{group}"\n',
                      encoding="utf-8")
    yield Site(config, db, sock)
    shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def daemon(site: Site, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], App]]:
    """Factory: start the daemon's real control server for `site` with the site's resolver; returns its App."""
    running: list[tuple[Any, asyncio.AbstractEventLoop, threading.Thread, App]] = []
    monkeypatch.setattr(logging.getLogger("watchstander.agent.control.server"), "level", logging.WARNING)

    def start() -> App:
        config = load_config(site.config)
        made = App(config, open_store(config.store.resolved_url()), system_clock)
        server = build_control_server(made, resolver=site.resolve)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="incidents-daemon", daemon=True)
        thread.start()
        running.append((server, loop, thread, made))
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        return made

    yield start
    for server, loop, thread, made in running:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        made.store.close()
