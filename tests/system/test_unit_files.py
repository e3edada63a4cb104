"""The shipped systemd files, checked without booting anything (the real boot is test_real_systemd.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from watchstander.agent.config.load import validate_config

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD / "watchstander.service"


def _unit_values(key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in UNIT.read_text(encoding="utf-8").splitlines()
            if line.startswith(key + "=")]


def test_example_config_is_valid_and_has_roles_and_sources() -> None:
    """The example validates as shipped and carries the [control.roles] block and [sources]."""
    text = (SYSTEMD / "watchstander.toml.example").read_text(encoding="utf-8")
    cfg = validate_config(tomllib.loads(text))
    assert cfg.control.roles.viewer and cfg.control.roles.approver
    assert cfg.sources.syslog_udp
    assert "linux-firewall" in text  # how the block playbook finds its firewall in the inventory


def test_unit_matches_tmpfiles_and_installer() -> None:
    """ConfigurationDirectoryMode equals the tmpfiles mode; every command runs from the installed venv."""
    tmpfiles = (SYSTEMD / "watchstander.tmpfiles.conf").read_text(encoding="utf-8")
    (mode,) = re.findall(r"^d /etc/watchstander (\d+) ", tmpfiles, re.MULTILINE)
    assert _unit_values("ConfigurationDirectoryMode") == [mode]
    for key in ("ExecStartPre", "ExecStart"):
        (cmd,) = _unit_values(key)
        assert cmd.startswith("/opt/watchstander/venv/bin/watchstander ")
    assert "--quiet" in _unit_values("ExecStartPre")[0]
    assert _unit_values("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert _unit_values("NotifyAccess") == ["main"] and _unit_values("WatchdogSec")
    installer = (SYSTEMD / "install.sh").read_text(encoding="utf-8")
    assert "/opt/watchstander" in installer
    subprocess.run(["sh", "-n", str(SYSTEMD / "install.sh")], check=True)


def test_exposure_score_offline(tmp_path: Path) -> None:
    """`systemd-analyze security` rates the shipped unit at most 2.0 (offline: no running systemd needed)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze missing (Debian systemd)")
    unit = tmp_path / "watchstander.service"
    shutil.copy(UNIT, unit)
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
                          check=False, capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout + done.stderr)
    if found is None:
        pytest.skip(f"this systemd-analyze cannot rate a unit offline: {done.stderr.strip()[-200:]}")
    assert float(found.group(1)) <= 2.0, done.stdout
