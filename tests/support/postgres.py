"""A real PostgreSQL server for the tests: Debian's binaries, a cluster in a temporary folder, loopback only.

The server runs as the `postgres` OS user (PostgreSQL refuses to run as root), listens on a free
127.0.0.1 port and a Unix socket in its own folder, trusts local connections (nothing else can
reach it), and is stopped when the session ends. Each test gets a fresh database.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
USER = "ws"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def why_unavailable() -> str | None:
    """Why a server cannot be started here, or None when it can."""
    if not BIN_DIRS or not (BIN_DIRS[0] / "initdb").exists():
        return "needs Debian's PostgreSQL server (apt-get install postgresql)"
    if os.geteuid() != 0:
        return "starting PostgreSQL as its own user needs root"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "needs the postgres OS user (created by Debian's postgresql package)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "needs psycopg (pip install 'psycopg[binary]')"
    return None


@dataclass
class PostgresServer:
    """A running cluster: where it listens and how to make a database on it."""

    folder: Path
    port: int
    bin_dir: Path

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL for `database` on this server (psycopg 3)."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its name."""
        name = "t_" + uuid.uuid4().hex[:12]
        self._psql(f"CREATE DATABASE {name}")
        return name

    def _psql(self, sql: str) -> None:
        subprocess.run([str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
                        "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
                       check=True, capture_output=True, timeout=30)

    def stop(self) -> None:
        """Stop the server fast and remove its folder."""
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w",
                      "stop"], check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start the same cluster (a server outage under a client)."""
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"])
        self._start()

    def _start(self) -> None:
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off -c full_page_writes=off"
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-o", opts,
                      "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start"])


def _as_postgres(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[bytes]:
    # psql, and pg_ctl for psql's client side, do not care; the server itself must not run as root.
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=check, capture_output=True, timeout=120)


def start_server() -> PostgresServer:
    """initdb a cluster in a new temporary folder and start it on a free loopback port."""
    bin_dir = BIN_DIRS[0]
    folder = Path(tempfile.mkdtemp(prefix="ws-pg-"))
    os.chmod(folder, 0o755)
    shutil.chown(folder, "postgres")
    _as_postgres([str(bin_dir / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", USER,
                  "-E", "UTF8", "--no-sync"])
    server = PostgresServer(folder, _free_port(), bin_dir)
    try:
        server._start()
    except subprocess.CalledProcessError as exc:
        log = (folder / "server.log").read_text(errors="replace") if (folder / "server.log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')}\n{log}") from exc
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session (skips with the reason when it cannot run here)."""
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server, as a store URL."""
    return postgres_server.url(postgres_server.create_database())
