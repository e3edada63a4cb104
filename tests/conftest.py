"""Fixtures every test folder may use: the shared telemetry, a fixed clock, SSH test keys and the IOS emulator."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# tests/support holds real test devices (SSH servers, snmpd, network namespaces): `import support.x`.
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from support.ios_emulator import IosEmulator
from support.sshkeys import SshTestKeys, make_test_keys

SHARED = REPO.parent / "shared"
FIXED_NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def shared_telemetry() -> Path:
    """../shared/telemetry beside the repository, or skip when this checkout has none."""
    path = SHARED / "telemetry"
    if not path.is_dir():
        pytest.skip(f"shared telemetry not found at {path}: these tests need ../shared beside the repo")
    return path


@pytest.fixture
def clock():  # type: ignore[no-untyped-def]
    """A clock fixed at 2026-11-27 12:00 UTC."""
    return lambda: FIXED_NOW


@pytest.fixture
def config_file(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Factory: write a TOML config whose store lives in tmp_path, plus extra TOML text."""

    def make(extra: str = "", name: str = "watchstander.toml") -> Path:
        path = tmp_path / name
        path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n{extra}', encoding="utf-8")
        return path

    return make


@pytest.fixture
def ssh_keys(tmp_path: Path) -> SshTestKeys:
    """An ed25519 client key and host key in tmp_path/keys."""
    return make_test_keys(tmp_path / "keys")


@pytest.fixture
def ios_emulator(ssh_keys: SshTestKeys) -> Iterator[Callable[..., IosEmulator]]:
    """Factory: a started IOS emulator on 127.0.0.1 trusting ssh_keys.client; stopped after the test."""
    started: list[IosEmulator] = []

    def make(**options: Any) -> IosEmulator:
        host_key = options.pop("host_key", ssh_keys.host)
        authorized = options.pop("authorized_keys", [ssh_keys.client])
        emulator = IosEmulator(host_key, authorized, **options)
        started.append(emulator)
        return emulator.start()

    yield make
    for emulator in started:
        emulator.stop()
