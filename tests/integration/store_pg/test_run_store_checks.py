"""`watchstander run` on a PostgreSQL store that answers but cannot be brought up to date: it stops, naming why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from support.postgres import PostgresServer, postgres_server  # noqa: F401

from watchstander.agent.errors import Exit
from watchstander.agent.store.schema import open_store, server_answers

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_a_store_newer_than_this_release_stops_start_up_instead_of_spooling(
        postgres_server: PostgresServer, tmp_path: Path) -> None:  # noqa: F811
    url = postgres_server.url(postgres_server.create_database())
    store = open_store(url)
    with store.begin() as conn:  # as a later release would leave it
        conn.execute(text("UPDATE schema_versions SET version = 99 WHERE component = 'core'"))
    store.close()
    assert server_answers(url)
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[store]\nurl = "{url}"\nspool = "{tmp_path / "spool.db"}"\n'
                   f'[control]\nsocket = "{tmp_path / "c.sock"}"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "watchstander.agent.cli.main", "run", "--config", str(cfg)],
                          capture_output=True, timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    said = done.stderr.decode("utf-8", "replace")
    assert done.returncode == Exit.STORE, said
    assert "newer than this release" in said and "starting anyway" not in said
    assert not (tmp_path / "spool.db").exists()


def test_server_answers_is_false_for_a_port_nothing_listens_on() -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert not server_answers(f"postgresql+psycopg://sensor@127.0.0.1:{port}/watchstander")
