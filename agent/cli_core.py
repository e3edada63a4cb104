"""Core commands: config check, replay, incidents, demo."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .config import masked_dump
from .context import Context
from .errors import EXIT_OK


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the core command groups."""
    cfg = sub.add_parser("config", parents=[parent], help="inspect the configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = cfg_sub.add_parser("check", parents=[parent],
                               help="validate and print the effective config (secrets masked); exit 2 when invalid")
    check.add_argument("--format", choices=("toml", "json"), default="toml")
    check.set_defaults(handler=cmd_config_check)


def cmd_config_check(args: argparse.Namespace, ctx: Context) -> int:
    """Print the effective configuration, or every error with its key path."""
    from .cli import dump_json

    data = masked_dump(ctx.config)
    if args.format == "json":
        print(dump_json(data))
    else:
        print(to_toml(data))
    print("config ok", file=sys.stderr)
    return EXIT_OK


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Render plain config data as TOML (tables after scalars, arrays of tables as [[...]])."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, table in tables:
        name = f"{prefix}{key}"
        lines.append(f"\n[{name}]")
        lines.append(to_toml(table, name + ".").strip("\n"))
    for key, items in arrays:
        for item in items:
            lines.append(f"\n[[{prefix}{key}]]")
            lines.append(to_toml(item, f"{prefix}{key}.").strip("\n"))
    return "\n".join(line for line in lines if line != "")


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
