"""Zeek's ASCII (TSV) log form: the `#` header lines and the data rows they describe.

A log starts with `#separator \\x09`, then `#set_separator`, `#empty_field`, `#unset_field`, `#path`,
`#open`, `#fields` and `#types`, each followed by the separator and its value(s); `#close` ends it.
In a row, the unset marker (`-`) is a missing value and the empty marker (`(empty)`) an empty set or
string; any byte Zeek would not print as is, the separator included, is written `\\xHH`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_FIELDS = 256
MAX_FIELD_NAME = 128
MAX_PATH_NAME = 64

_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})|\\\\")
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_.]+$")


class HeaderError(ValueError):
    """A `#` header line Zeek would not write."""


@dataclass(slots=True)
class Header:
    """What the header lines seen so far say about the rows that follow them (markers as decoded text)."""

    separator: str = "\t"
    set_separator: bytes = b","
    empty: str = "(empty)"
    unset: str = "-"
    path: str | None = None
    fields: tuple[str, ...] = ()
    types: tuple[str, ...] = field(default_factory=tuple)
    sets: tuple[int, ...] = ()  # the columns `#types` says are sets or vectors

    def ready(self) -> bool:
        """True once a `#fields` line says what the columns are."""
        return bool(self.fields)


def unescape(value: bytes) -> str:
    """Undo Zeek's `\\xHH` escapes and decode as UTF-8; invalid bytes stay visible as `\\xHH` text."""
    if b"\\" in value:
        value = _ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)) if m.group(1) else b"\\", value)
    return value.decode("utf-8", "backslashreplace")


def read_header_line(header: Header, line: bytes) -> Header:
    """Apply one `#` line to `header`; a new `#separator` starts a new log (returns a fresh Header)."""
    if line.startswith(b"#separator "):
        sep = unescape(line[len(b"#separator "):].strip(b" \r")).encode("latin-1", "replace")
        if len(sep) != 1 or sep[0] > 0x7F:
            raise HeaderError("#separator is not one ASCII character")
        return Header(separator=sep.decode("latin-1"))
    key, _, rest = line[1:].partition(header.separator.encode("latin-1"))
    if key == b"fields":
        names = tuple(n.decode("ascii", "replace") for n in rest.split(header.separator.encode("latin-1")))
        if not 0 < len(names) <= MAX_FIELDS or len(set(names)) != len(names) or not all(
                len(n) <= MAX_FIELD_NAME and _FIELD_NAME.match(n) for n in names):
            raise HeaderError("#fields: empty, duplicate, too many or malformed names")
        header.fields, header.types, header.sets = names, (), ()
    elif key == b"types":
        types = tuple(t.decode("ascii", "replace")[:64] for t in rest.split(header.separator.encode("latin-1")))
        if len(types) == len(header.fields):
            header.types = types
            header.sets = tuple(i for i, t in enumerate(types) if t.startswith(("set[", "vector[")))
    elif key == b"path":
        path = unescape(rest)
        if not path or len(path) > MAX_PATH_NAME or not _FIELD_NAME.match(path):
            raise HeaderError("#path is empty, too long or not a log name")
        header.path = path
    elif key == b"set_separator":
        header.set_separator = rest or b","
    elif key == b"empty_field":
        header.empty = rest.decode("utf-8", "backslashreplace")
    elif key == b"unset_field":
        header.unset = rest.decode("utf-8", "backslashreplace")
    # #open, #close and comments (`### ...`) say nothing about the rows.
    return header


def read_row(header: Header, line: bytes) -> dict[str, Any]:
    """One data row as {field name: str, list of str (sets and vectors) or None (unset)}."""
    text = line.decode("utf-8", "backslashreplace")
    values = text.split(header.separator)
    if len(values) != len(header.fields):
        raise ValueError(f"{len(values)} fields where #fields names {len(header.fields)}")
    unset, empty = header.unset, header.empty
    row: dict[str, Any] = {name: None if v == unset else "" if v == empty else v
                           for name, v in zip(header.fields, values, strict=True)}
    if "\\" in text:
        # Bytes that were not UTF-8 were decoded to \xHH text, which unescapes back to the same bytes.
        for name, v in row.items():
            if v and "\\" in v:
                row[name] = unescape(v.encode("utf-8"))
    for i in header.sets:
        raw, name = values[i], header.fields[i]
        if raw == empty:
            row[name] = []
        elif row[name] is not None:
            row[name] = [unescape(x) for x in raw.encode("utf-8").split(header.set_separator)[:MAX_FIELDS]]
    return row
