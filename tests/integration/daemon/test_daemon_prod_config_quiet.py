"""`config check --quiet` for ExecStartPre=: "config ok" or the problems, never the effective config in the journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchstander.agent.cli.main import build_parser, main
from watchstander.agent.errors import Exit

pytestmark = pytest.mark.integration


def _has_quiet() -> bool:
    try:
        build_parser().parse_args(["config", "check", "--quiet"])
    except SystemExit:
        return False
    return True


@pytest.fixture(autouse=True)
def _needs_quiet() -> None:
    if not _has_quiet():
        pytest.skip("`config check --quiet` is not in agent/cli/config.py yet")


def test_quiet_check_prints_only_config_ok(config_file, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path: Path = config_file('[policy]\nautonomy = "observe"\n')
    assert main(["config", "check", "--quiet", "--config", str(path)]) == Exit.OK
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == "config ok"


def test_quiet_check_still_names_every_problem(config_file, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path: Path = config_file('[policy]\nautonomy = "reckless"\n')
    assert main(["config", "check", "--quiet", "--config", str(path)]) == Exit.CONFIG
    out, err = capsys.readouterr()
    assert out == ""
    assert "policy.autonomy" in err
    assert "config ok" not in err
