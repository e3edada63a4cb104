"""`watchstander guidance ...`: the deadline tracker's commands."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the guidance command group."""
    p = sub.add_parser("guidance", parents=[parent], help="EO 14409 guidance deadlines and reports")
    p.set_defaults(handler=lambda args, ctx: (p.print_help(), 0)[1])
