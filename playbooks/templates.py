"""`{{ inputs.NAME }}` substitution: the only template syntax a playbook may use.

There is deliberately no expression language: a placeholder names one declared input and is
replaced by that input's already-validated value. A string that is exactly one placeholder takes
the value's own type (an integer stays an integer; a list input inside a list is spliced in).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*inputs\.([a-z][a-z0-9_]{0,31})\s*\}\}")

Value = str | int
Values = Mapping[str, Value | list[Value]]


class TemplateError(ValueError):
    """A template string is malformed or uses a value where it cannot go."""


def syntax_problem(text: str) -> str | None:
    """Why `text` is not a valid template, or None when it is."""
    rest = PLACEHOLDER.sub("", text)
    if "{{" in rest or "}}" in rest:
        return "only {{ inputs.NAME }} placeholders are allowed (lower-case input names)"
    return None


def references(text: str) -> list[str]:
    """The input names a template string refers to, in order."""
    return PLACEHOLDER.findall(text)


def whole_reference(text: str) -> str | None:
    """The input name when `text` is exactly one placeholder, else None."""
    match = PLACEHOLDER.fullmatch(text.strip())
    return match.group(1) if match else None


def strings_in(obj: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string value in nested dicts and lists, with its key path (keys are never templates)."""
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from strings_in(value, (*path, key))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from strings_in(value, (*path, index))


def render_string(text: str, values: Values) -> Value | list[Value]:
    """Substitute placeholders in one string; a whole-string placeholder keeps the value's type."""
    name = whole_reference(text)
    if name is not None:
        return values[name]

    def one(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        if isinstance(value, list):
            raise TemplateError(f"list input {match.group(1)!r} can only stand alone in a list")
        return str(value)

    return PLACEHOLDER.sub(one, text)


def render(obj: Any, values: Values) -> Any:
    """Substitute placeholders throughout nested dicts and lists."""
    if isinstance(obj, str):
        return render_string(obj, values)
    if isinstance(obj, dict):
        return {key: render(value, values) for key, value in obj.items()}
    if isinstance(obj, list):
        out: list[Any] = []
        for item in obj:
            rendered = render(item, values)
            if isinstance(item, str) and isinstance(rendered, list):
                out.extend(rendered)
            else:
                out.append(rendered)
        return out
    return obj
