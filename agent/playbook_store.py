"""Store tables for playbook definition approvals (component "playbooks")."""

from __future__ import annotations

from .store import register_migrations

register_migrations("playbooks", [])
