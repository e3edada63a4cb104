"""A small, strict YAML reader that remembers the line of every key, so errors can name file, line and key.

Playbooks are reviewed by people and approved by hash, so the reader accepts only the plain subset
a reviewer can read at a glance: UTF-8, one document, string keys, no duplicates, no anchors,
aliases, merge keys or explicit tags, bounded size and depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from .errors import PlaybookValidationError, Problem

MAX_BYTES = 256 * 1024
MAX_DEPTH = 32

KeyPath = tuple[str | int, ...]

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass(frozen=True)
class LoadedYaml:
    """Plain data (dicts, lists, scalars) and the 1-based line of each key or list item."""

    data: Any
    lines: dict[KeyPath, int]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases while composing (they hide what will be run)."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        # types-PyYAML leaves Parser.peek_event unannotated; it returns the next yaml.Event.
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, "anchors and aliases are not allowed",
                                              event.start_mark)
        # types-PyYAML says index is an int; PyYAML passes None (root), an int (list item) or the key node.
        return super().compose_node(parent, index)  # type: ignore[arg-type]


def key_path(path: KeyPath) -> str:
    """Render a key path the way config errors do: `steps[0].args.argv`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_yaml(raw: bytes, file: str) -> LoadedYaml:
    """Parse one YAML document; any defect raises PlaybookValidationError naming file and line."""
    if len(raw) > MAX_BYTES:
        raise PlaybookValidationError([Problem(file, None, "", f"file is larger than {MAX_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PlaybookValidationError([Problem(file, line, "", "not valid UTF-8 text")]) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at: int | None = mark.line + 1 if mark is not None else None
        message = exc.problem or exc.context or "syntax error"
        raise PlaybookValidationError([Problem(file, at, "", f"YAML: {message}")]) from None
    except yaml.reader.ReaderError as exc:
        raise PlaybookValidationError([Problem(file, text[: exc.position].count("\n") + 1, "",
                                               f"YAML: {exc.reason}")]) from None
    except yaml.YAMLError as exc:
        raise PlaybookValidationError([Problem(file, None, "", f"YAML: {exc}")]) from None
    except RecursionError:
        raise PlaybookValidationError([Problem(file, None, "", "YAML is nested too deeply")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise PlaybookValidationError([Problem(file, 1, "", "the file holds no YAML document")])
    problems: list[Problem] = []
    lines: dict[KeyPath, int] = {(): node.start_mark.line + 1}
    data = _convert(node, (), 0, loader, lines, problems, file)
    if problems:
        raise PlaybookValidationError(problems)
    return LoadedYaml(data, lines)


def _convert(node: yaml.Node, path: KeyPath, depth: int, loader: yaml.SafeLoader,
             lines: dict[KeyPath, int], problems: list[Problem], file: str) -> Any:
    line = node.start_mark.line + 1
    if depth > MAX_DEPTH:
        problems.append(Problem(file, line, key_path(path), f"nested deeper than {MAX_DEPTH} levels"))
        return None
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP_TAG:
            problems.append(Problem(file, line, key_path(path), f"explicit tag {node.tag!r} is not allowed"))
            return None
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                problems.append(Problem(file, key_line, key_path(path),
                                        "keys must be plain strings (quote keys such as yes, no, on, 1)"))
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in out:
                problems.append(Problem(file, key_line, key_path(child),
                                        f"duplicate key (first at line {lines[child]})"))
                continue
            lines[child] = key_line
            out[key] = _convert(value_node, child, depth + 1, loader, lines, problems, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ_TAG:
            problems.append(Problem(file, line, key_path(path), f"explicit tag {node.tag!r} is not allowed"))
            return None
        items: list[Any] = []
        for index, item_node in enumerate(node.value):
            child = (*path, index)
            lines[child] = item_node.start_mark.line + 1
            items.append(_convert(item_node, child, depth + 1, loader, lines, problems, file))
        return items
    if node.tag not in _PLAIN_TAGS:
        problems.append(Problem(file, line, key_path(path), f"value of type {node.tag!r} is not allowed"))
        return None
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        problems.append(Problem(file, line, key_path(path), f"bad value: {exc}"))
        return None


def locate(loaded: LoadedYaml, loc: tuple[str | int, ...]) -> tuple[str, int | None]:
    """Map a validation error location onto the data: the key path shown and the line it is on."""
    node: Any = loaded.data
    path: list[str | int] = []
    shown: list[str | int] = []
    for position, part in enumerate(loc):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
            path.append(part)
            shown.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
            shown.append(part)
        elif position == len(loc) - 1 and isinstance(part, str) and part.isidentifier():
            shown.append(part)  # a missing key: show it, on its parent's line
        # Anything else is a pydantic union tag or validator name, not a key in the file.
    line = loaded.lines.get(tuple(path))
    return key_path(tuple(shown)), line
