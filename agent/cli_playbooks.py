"""`watchstander playbooks ...`: the approved-playbook catalogue."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the playbooks command group."""
    p = sub.add_parser("playbooks", parents=[parent], help="list, validate and approve playbooks")
    p.set_defaults(handler=lambda args, ctx: (p.print_help(), 0)[1])
