"""The source folders stay mypy-clean under the strict settings in pyproject.toml, with real types across rooms.

The folders install as `watchstander.*` through one package-dir mapping that mypy cannot follow
from the source tree, so the test checks a view of it: `.mypy_cache/view/watchstander/<room>`
symlinks to each folder, put on MYPYPATH, checked as the installed packages. An import from one
room into another then resolves to real types instead of `Any`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "connectors", "playbooks", "guidance")


def namespace_view(root: Path) -> Path:
    """Make (or refresh) `root/watchstander/<room>` symlinks to the room folders; returns `root`."""
    pkg = root / "watchstander"
    pkg.mkdir(parents=True, exist_ok=True)
    for room in PACKAGES:
        link = pkg / room
        if link.is_symlink() and link.resolve() == (REPO / room).resolve():
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(REPO / room, target_is_directory=True)
    return root


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_mypy_strict_is_clean_across_rooms() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]' brings it and types-PyYAML)")
    view = namespace_view(REPO / ".mypy_cache" / "view")
    args = [arg for room in PACKAGES for arg in ("-p", f"watchstander.{room}")]
    # A cold run takes about a minute on two cores; later runs reuse .mypy_cache (git-ignored).
    result = subprocess.run(
        [sys.executable, "-m", "mypy", *args],
        cwd=REPO, capture_output=True, text=True, timeout=230, check=False,
        env={**os.environ, "MYPYPATH": str(view)},
    )
    assert result.returncode == 0, f"mypy reported errors:\n{result.stdout}{result.stderr}"


def test_the_view_maps_every_room(tmp_path: Path) -> None:
    """The view is what pyproject's package-dir mapping installs: watchstander.<room> -> <room>/."""
    view = namespace_view(tmp_path)
    for room in PACKAGES:
        assert (view / "watchstander" / room / "__init__.py").resolve() == (REPO / room / "__init__.py").resolve()
    assert '"watchstander.agent" = "agent"' in (REPO / "pyproject.toml").read_text(encoding="utf-8")
