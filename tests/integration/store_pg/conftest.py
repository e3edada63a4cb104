"""The store on both engines: every test here that takes `store_url` runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.postgres import PostgresServer, postgres_server, postgres_url  # noqa: F401


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: a SQLite file, or a fresh database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url(server.create_database())
