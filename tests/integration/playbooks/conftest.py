"""Factories for approval tests: a real SQLite store in tmp_path and copies of shipped playbooks."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from watchstander.agent.clock import fixed_clock
from watchstander.agent.store.approvals import ApprovalStore
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.engine import Store
from watchstander.agent.store.schema import open_store
from watchstander.playbooks import library_dir

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An opened, migrated SQLite store file."""
    opened = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    yield opened
    opened.close()


@pytest.fixture
def audit(store: Store) -> AuditLog:
    """The audit log in that store, with a fixed clock."""
    return AuditLog(store, fixed_clock(NOW))


@pytest.fixture
def approvals(store: Store, audit: AuditLog) -> ApprovalStore:
    """The approval store under test."""
    return ApprovalStore(store, audit, fixed_clock(NOW))


@pytest.fixture
def copy_shipped(tmp_path: Path) -> Callable[[str], Path]:
    """Copy one shipped playbook into tmp_path/custom and return the copy's path."""

    def copy(playbook_id: str) -> Path:
        folder = tmp_path / "custom"
        folder.mkdir(exist_ok=True)
        return Path(shutil.copy(library_dir() / f"{playbook_id}.yaml", folder / f"{playbook_id}.yaml"))

    return copy


@pytest.fixture
def now() -> datetime:
    """The fixed time every clock in these tests answers."""
    return NOW


@pytest.fixture
def edit_one_byte() -> Callable[[Path], None]:
    """Change one byte of a playbook's description: the hash changes, the file stays valid."""

    def edit(path: Path) -> None:
        raw = path.read_bytes()
        index = raw.index(b"description: ") + len(b"description: ") + 5
        path.write_bytes(raw[:index] + (b"X" if raw[index:index + 1] != b"X" else b"Y") + raw[index + 1:])

    return edit
