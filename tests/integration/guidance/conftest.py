"""Factories for guidance integration tests: a config file pointing at a real SQLite store in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from watchstander.agent.cli.main import main


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a watchstander.toml whose store is a fresh SQLite file; extra TOML text is appended."""
    def write(extra: str = "") -> Path:
        path = tmp_path / "watchstander.toml"
        path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "state.db"}"\n\n{extra}', encoding="utf-8")
        path.chmod(0o600)
        return path
    return write


@pytest.fixture
def cli(write_config: Callable[..., Path]) -> Callable[..., int]:
    """Run the real CLI with the test config; returns the exit status."""
    config = write_config()

    def run(*args: str) -> int:
        return main(["--config", str(config), *args])
    return run
