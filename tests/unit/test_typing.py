"""The source folders stay mypy-clean under the strict settings in pyproject.toml."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "connectors", "playbooks", "guidance")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_mypy_strict_is_clean() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]' brings it and types-PyYAML)")
    # A cold run takes about 20 s; later runs reuse .mypy_cache (git-ignored) and take a few.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", *PACKAGES],
        cwd=REPO, capture_output=True, text=True, timeout=85, check=False,
    )
    assert result.returncode == 0, f"mypy reported errors:\n{result.stdout}{result.stderr}"
