"""Stopping the control server leaves no connection behind, even one accepted an instant before."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.config.control import ControlConfig
from watchstander.agent.control.registry import MethodRegistry
from watchstander.agent.control.server import ControlServer


@pytest.mark.parametrize("turns", range(8))
def test_stop_ends_connections_whose_handlers_have_not_started(short_dir: Path, clock: Any, turns: int) -> None:
    """Connections accepted just before stop() get their socket closed and no task is left pending.

    Accepting takes the loop a few turns (accept, the transport, connection_made, the handler's
    first step); stopping after each number of turns hits every stage of it at least once.
    """
    server = ControlServer(ControlConfig(socket=short_dir / "run" / "control.sock", socket_group="root"),
                           MethodRegistry(), clock)
    peers: list[socket.socket] = []

    async def scenario() -> set[asyncio.Task[Any]]:
        await server.start()
        for _ in range(5):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect(str(server.path))  # the kernel accepts at once; the handler has not run yet
            peers.append(s)
        for _ in range(turns):
            await asyncio.sleep(0)
        await server.stop()
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        left = asyncio.run(scenario())
        gc.collect()
    try:
        for s in peers:
            s.settimeout(2)
            assert _hung_up(s)
    finally:
        for s in peers:
            s.close()
    assert left == set()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def _hung_up(s: socket.socket) -> bool:
    """True when the server closed its end (an orderly close or a reset)."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
