"""What every command prints: one JSON format for machines, terminal-safe text for people."""

from __future__ import annotations

import json
import unicodedata


def dump_json(data: object) -> str:
    """JSON for machine consumers: stable key order, UTF-8, two-space indent (one format for every command)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def printable(text: str, limit: int | None = None) -> str:
    """Text from a model or telemetry made safe for a terminal: control characters shown escaped."""
    # Escapes, bidi overrides and line separators in a justification could rewrite what the
    # operator sees on the terminal; show them as \x.. / \u.... instead.
    out = "".join(ch if ch == " " or unicodedata.category(ch)[0] not in "CZ"
                  else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return out if limit is None or len(out) <= limit else out[: limit - 1] + "…"
