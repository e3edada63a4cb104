"""Factory fixtures for the device connectors: SSH keys, the IOS emulator on 127.0.0.1, targets, a pool."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from support.ios_emulator import IosEmulator
from support.sshkeys import SshTestKeys, write_known_hosts

from watchstander.connectors.ssh import SshPool, SshTarget

T = TypeVar("T")


@pytest.fixture
def ssh_target(tmp_path: Path, ssh_keys: SshTestKeys) -> Callable[..., SshTarget]:
    """Factory: the SshTarget for an emulator, its known_hosts trusting the emulator's host key."""

    def make(emulator: IosEmulator, **overrides: Any) -> SshTarget:
        known_hosts = write_known_hosts(tmp_path / f"known_hosts-{emulator.port}", [emulator.known_hosts_line()])
        target = SshTarget(name="edge-router", address="127.0.0.1", port=emulator.port, user=emulator.user,
                           key_file=ssh_keys.client.private_path, known_hosts=known_hosts, platform="cisco-ios")
        return replace(target, **overrides)

    return make


@pytest.fixture
def with_pool() -> Callable[..., Any]:
    """Run `body(pool)` on a fresh event loop with a fresh SshPool, closing the pool afterwards."""

    def run(body: Callable[[SshPool], Awaitable[T]], *, max_output: int = 65536) -> T:
        async def main() -> T:
            pool = SshPool(max_output=max_output)
            try:
                return await body(pool)
            finally:
                await pool.close()

        return asyncio.run(main())

    return run
