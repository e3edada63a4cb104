"""`watchstander config check`: the effective configuration, secrets masked, or every bad key named."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from ..config.load import masked_dump
from ..errors import EXIT_OK
from .context import Context
from .output import dump_json

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the config command."""
    cfg = sub.add_parser("config", parents=[parent], help="inspect the configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = cfg_sub.add_parser("check", parents=[parent],
                               help="validate and print the effective config (secrets masked); exit 2 when invalid")
    check.add_argument("--format", choices=("toml", "json"), default="toml")
    check.add_argument("--quiet", action="store_true",
                       help="print only 'config ok' or the problems (for ExecStartPre=: no config in the journal)")
    check.set_defaults(handler=cmd_config_check)


def cmd_config_check(args: argparse.Namespace, ctx: Context) -> int:
    """Print the effective configuration, or every error with its key path."""

    data = masked_dump(ctx.config)
    if not args.quiet:
        print(dump_json(data) if args.format == "json" else to_toml(data))
    print("config ok", file=sys.stderr)
    return EXIT_OK


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Render plain config data as TOML that reads back to the same data (unset values left out)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        elif value is not None:
            lines.append(f"{toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        name = f"{prefix}{toml_key(key)}"
        lines.append(f"\n[{name}]")
        lines.append(to_toml(table, name + ".").strip("\n"))
    for key, items in arrays:
        for item in items:
            name = f"{prefix}{toml_key(key)}"
            lines.append(f"\n[[{name}]]")
            lines.append(to_toml(item, name + ".").strip("\n"))
    return "\n".join(line for line in lines if line != "")


def toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted key (a dot in a bare key would split the path)."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    return json.dumps(str(value), ensure_ascii=False)
