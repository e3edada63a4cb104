"""The method registry: dotted names to (required role, handler), declared once, duplicates raise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .identity import ROLES, Identity, Role

Handler = Callable[[Identity, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Method:
    """One registered method: who may call it and what runs."""

    name: str
    role: Role
    handler: Handler


class MethodRegistry:
    """A plain dict of methods keyed by dotted name; the role is read from here, never re-decided."""

    def __init__(self) -> None:
        self.methods: dict[str, Method] = {}

    def register_method(self, name: str, role: Role, handler: Handler) -> None:
        """Declare a method and the role it requires; a duplicate name or unknown role raises."""
        if name in self.methods:
            raise ValueError(f"control method {name!r} already registered")
        if role not in ROLES:
            raise ValueError(f"{name}: unknown role {role!r}; known: {', '.join(ROLES)}")
        if not name or name != name.lower() or " " in name:
            raise ValueError(f"not a dotted lower-case method name: {name!r}")
        self.methods[name] = Method(name, role, handler)

    def get(self, name: str) -> Method | None:
        """The method of that name, or None."""
        return self.methods.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.methods

    def names(self) -> list[str]:
        """Registered method names, sorted."""
        return sorted(self.methods)
