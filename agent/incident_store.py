"""Store tables for findings and incidents (component "core")."""

from __future__ import annotations

from .store import register_migrations

register_migrations("core", [])
