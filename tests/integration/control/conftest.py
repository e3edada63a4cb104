"""Factory fixtures: a ControlServer on a real Unix socket, run on its own event loop thread."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.config.control import ControlConfig
from watchstander.agent.control.registry import MethodRegistry
from watchstander.agent.control.server import ControlServer


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory under /tmp whose paths fit in sun_path (pytest's tmp_path may not)."""
    path = Path(tempfile.mkdtemp(prefix="wsc", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _settle() -> None:
    """Let the tasks still on the loop end, so every accepted connection's transport is closed here.

    A connection accepted just as the server stops (e.g. the stale-socket probe made by a second
    server on the same path) gets its handler task only after ControlServer.stop() has looked at
    its clients; closing the loop under it would leak the socket to the garbage collector, and the
    ResourceWarning would then fail whichever test happened to be running.
    """
    me = asyncio.current_task()
    for _ in range(10):  # an accept task can start a handler task; go round until none are left
        others = asyncio.all_tasks() - {me}
        if not others:
            break
        try:
            await asyncio.wait_for(asyncio.gather(*others, return_exceptions=True), timeout=2)
        except asyncio.TimeoutError:
            pass  # wait_for cancelled those still running; their finally blocks have closed them
    await asyncio.sleep(0)  # transport.close() releases the socket in a call_soon callback


class RunningServer:
    """A started ControlServer and the loop thread it runs on."""

    def __init__(self, server: ControlServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.server = server
        self.loop = loop
        self.thread = thread
        self.path = server.path

    def stop(self) -> None:
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
            asyncio.run_coroutine_threadsafe(_settle(), self.loop).result(30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def control_server(short_dir: Path, clock: Any) -> Iterator[Callable[..., RunningServer]]:
    """Factory: start a server with a registry, an optional resolver and [control] overrides."""
    started: list[RunningServer] = []

    def start(registry: MethodRegistry | None = None, resolver: Any = None, **config: Any) -> RunningServer:
        config.setdefault("socket", short_dir / "run" / "control.sock")
        config.setdefault("socket_group", "root")
        server = ControlServer(ControlConfig(**config), registry or MethodRegistry(), clock, resolver=resolver)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="control-test-loop", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            raise
        running = RunningServer(server, loop, thread)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
