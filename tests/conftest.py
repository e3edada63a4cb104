"""Fixtures every test folder may use: the shared telemetry location and a fixed clock."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# tests/support holds real test devices (SSH servers, snmpd, network namespaces): `import support.x`.
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))
SHARED = REPO.parent / "shared"
FIXED_NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


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
