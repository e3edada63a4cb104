"""What every command prints: one JSON format for machines, terminal-safe text for people."""

from __future__ import annotations

import json
import re
import unicodedata

from ..app.text import show_invisible

# Anything but printable ASCII and the newline of the indentation: the rare candidates to check.
_NOT_PLAIN = re.compile(r"[^\x20-\x7e\n]")


def _json_escape(match: re.Match[str]) -> str:
    ch = match.group()
    if unicodedata.category(ch)[0] not in "CZ":
        return ch
    code = ord(ch)
    if code > 0xFFFF:  # JSON spells a character outside the BMP as a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def dump_json(data: object) -> str:
    """JSON for machine consumers: stable key order, UTF-8, two-space indent (one format for every command)."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    # ensure_ascii=False leaves C1 controls, bidi overrides, line separators and lone surrogates raw:
    # `jq` or `cat` would hand them to a terminal. Outside strings the text is ASCII, so escaping
    # them as \uXXXX keeps the same JSON value.
    return _NOT_PLAIN.sub(_json_escape, text)


def printable(text: str, limit: int | None = None) -> str:
    """Text from a model or telemetry made safe for a terminal: control characters shown escaped."""
    # Escapes, bidi overrides and line separators in a justification could rewrite what the
    # operator sees on the terminal; show them as \x.. / \u.... instead.
    out = show_invisible(text)
    return out if limit is None or len(out) <= limit else out[: limit - 1] + "…"
