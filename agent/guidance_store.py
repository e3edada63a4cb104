"""Store tables for the guidance tracker (component "guidance")."""

from __future__ import annotations

from .store import register_migrations

register_migrations("guidance", [])
