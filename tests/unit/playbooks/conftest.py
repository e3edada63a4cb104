"""Factories for playbook files written to tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

MINIMAL = """\
id: test-block
version: 1
title: Test playbook
description: A small playbook used by the tests.
risk: low
inputs:
  fw:
    type: device
    role: linux-firewall
    description: The firewall.
  address:
    type: ipv4
    description: The address.
steps:
  - id: add
    action: ssh.command
    args:
      target: "{{ inputs.fw }}"
      argv: [nft, add, element, inet, t, s, "{ {{ inputs.address }} }"]
"""


@pytest.fixture
def minimal_text() -> str:
    """A valid playbook's text, to be edited into broken variants."""
    return MINIMAL


@pytest.fixture
def write_playbook(tmp_path: Path) -> Callable[[str | bytes, str], Path]:
    """Write playbook content to a file in tmp_path and return its path."""

    def write(content: str | bytes, name: str = "pb.yaml") -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return write
