"""The store's engine: SQLite in WAL mode by default, through SQLAlchemy Core so PostgreSQL can follow.

Schema changes are migrations, versioned per component ("core", "audit", "guidance", ...) so that
each part of the agent owns its own tables. A migration is a function that takes a Connection; it
runs inside one transaction together with the version bump. The engine knows no component: each
component module declares its `SCHEMA`, and `schema.py` lists them all in one table.

A store opened read-only (`connect(url, read_only=True)`) is never migrated or written: commands
that only read use it, so that a user who may read the store file but not write it can still run
them. A new SQLite store is private to its owner: its folder 0700, the file (and so its -wal and
-shm files, which SQLite creates with the database's mode) 0600.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, create_engine, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

from ..errors import StoreError

log = logging.getLogger(__name__)

Migration = Callable[[Connection], None]

# Where Store.begin() keeps the callables to run after its transaction committed (SQLAlchemy's
# "commit" event runs before the database commits, so it cannot tell a commit that failed).
AFTER_COMMIT = "watchstander.after_commit"

_meta = MetaData()
schema_versions = Table(
    "schema_versions", _meta,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)


@dataclass(frozen=True)
class Component:
    """A part of the agent that owns tables: its name and ordered migrations (N brings it to version N)."""

    name: str
    migrations: tuple[Migration, ...]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss, and a lost
    # "approval consumed" or "step started" record could let an approved action run twice.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _sqlite_reader_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class Store:
    """An opened database: migrated for writing, or opened read-only (`read_only`) and never written."""

    def __init__(self, engine: Engine, *, read_only: bool = False) -> None:
        self.engine = engine
        self.read_only = read_only

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction (committed on success, rolled back on error).

        Callables appended to `conn.info[AFTER_COMMIT]` run once the commit has succeeded, never otherwise.
        """
        after: list[Callable[[], None]] = []
        try:
            with self.engine.begin() as conn:
                conn.info[AFTER_COMMIT] = after
                try:
                    yield conn
                finally:
                    conn.info.pop(AFTER_COMMIT, None)
        except OperationalError as exc:
            raise StoreError(f"store operation failed: {exc.orig}") from exc
        for hook in after:
            hook()

    def versions(self) -> dict[str, int]:
        """The schema version of every component."""
        try:
            with self.engine.connect() as conn:
                return {row.component: row.version for row in conn.execute(select(schema_versions))}
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the store's schema versions: {exc}") from exc

    def maintain(self) -> None:
        """Periodic upkeep: fold the SQLite write-ahead log back and refresh the planner's statistics."""
        if self.engine.dialect.name != "sqlite":
            return
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.exec_driver_sql("PRAGMA optimize")
        except OperationalError as exc:
            raise StoreError(f"store maintenance failed: {exc.orig}") from exc

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def insert_new(conn: Connection, table: Table, keys: Sequence[str], values: dict[str, Any]) -> int | None:
    """Insert a row unless one with the same unique `keys` exists (atomically, on both engines).

    Returns the new row's `id`, or None when the row was there already (or another transaction
    inserted it first: PostgreSQL waits for that one to commit, then does nothing).
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys))
    new_id = conn.execute(stmt.returning(table.c.id)).scalar_one_or_none()
    return None if new_id is None else int(new_id)


def connect(url: str, *, read_only: bool = False) -> Store:
    """Open the store at `url`; no migrations.

    Read-write, a missing SQLite file and its folders are created private to the caller.
    Read-only, nothing is created or written, and a missing store is a StoreError.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"bad store URL {url!r}: {exc}") from exc
    is_sqlite = parsed.get_backend_name() == "sqlite"
    is_file = is_sqlite and parsed.database not in (None, "", ":memory:")
    if read_only and is_file:
        return _connect_sqlite_reader(parsed)
    if is_file and parsed.database is not None and not parsed.database.startswith("file:"):
        _create_private(Path(parsed.database))
    # A server that restarted (or failed over) leaves dead connections in the pool: test each one on
    # checkout, so that the first transaction after the outage works instead of failing once.
    options: dict[str, Any] = {} if is_sqlite else {"pool_pre_ping": True}
    try:
        engine = create_engine(url, future=True, **options)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot open store {url!r}: {exc}") from exc
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_reader_pragmas if read_only else _sqlite_pragmas)
    return Store(engine, read_only=read_only)


def _create_private(db_path: Path) -> None:
    """Create the missing folders of `db_path` 0700 and, if it is missing, the database file 0600.

    Explicit modes rather than a umask around the creation: the umask is process-wide, and the
    daemon may have threads creating files of their own at that moment. SQLite gives the -wal and
    -shm files the mode of the database file, so they are 0600 too.
    """
    missing = [p for p in (db_path.parent, *db_path.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass  # created by someone else meanwhile: theirs stands
        except OSError as exc:
            raise StoreError(f"cannot create {folder}: {exc.strerror}") from exc
    try:
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create {db_path}: {exc.strerror}") from exc


_SQLITE_READONLY = 8  # the primary result code of every SQLITE_READONLY_* extended code


def _connect_sqlite_reader(parsed: URL) -> Store:
    assert parsed.database is not None
    db_path = Path(parsed.database).absolute()
    if not db_path.is_file():
        raise StoreError(f"no store at {db_path}: nothing has been recorded there yet")
    uri = f"file:{quote(str(db_path))}?mode=ro"
    wal = db_path.with_name(db_path.name + "-wal")

    def open_reader() -> sqlite3.Connection:
        con = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return con
        except sqlite3.OperationalError as exc:
            con.close()
            if exc.sqlite_errorcode & 0xFF != _SQLITE_READONLY or wal.exists():
                raise
        # A WAL database whose -shm file this user can neither open nor create (the folder is not
        # theirs) and with no -wal file: everything committed is in the main file, so read it as
        # immutable. A writer that starts meanwhile is not seen; a one-shot read accepts that.
        return sqlite3.connect(uri + "&immutable=1", uri=True, check_same_thread=False)

    engine = create_engine("sqlite://", creator=open_reader, poolclass=QueuePool, future=True)
    event.listen(engine, "connect", _sqlite_reader_pragmas)
    store = Store(engine, read_only=True)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        store.close()
        raise StoreError(f"cannot read store {db_path}: {getattr(exc, 'orig', exc)}") from exc
    return store


def check_store(store: Store, components: Sequence[Component]) -> dict[str, int]:
    """Check, without changing anything, that every component is at this release's version; returns them."""
    try:
        with store.engine.connect() as conn:
            initialised = store.engine.dialect.has_table(conn, schema_versions.name)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read store: {getattr(exc, 'orig', exc)}") from exc
    if not initialised:
        raise StoreError("the store has not been initialised yet: run the daemon (or any command that records) "
                         "once as a user who may write it")
    current = store.versions()
    for component in components:
        have, need = current.get(component.name, 0), len(component.migrations)
        if have < need:
            raise StoreError(
                f"store schema for {component.name!r} is version {have}, older than this release needs "
                f"({need}); a read-only command does not migrate it: run the daemon (or any command "
                "that records) once as a user who may write the store")
        if have > need:
            raise StoreError(
                f"store schema for {component.name!r} is version {have}, newer than this release "
                f"knows ({need}); upgrade watchstander")
    return current


def migrate_store(store: Store, components: Sequence[Component]) -> dict[str, int]:
    """Apply every pending migration of every component; returns the new versions."""
    if store.read_only:
        raise StoreError("a store opened read-only is never migrated")
    names = [c.name for c in components]
    if len(set(names)) != len(names):
        raise ValueError(f"a component is listed twice: {names}")
    try:
        with store.engine.begin() as conn:
            _meta.create_all(conn)
            current = {r.component: r.version for r in conn.execute(select(schema_versions))}
        for component, migrations in ((c.name, c.migrations) for c in components):
            have = current.get(component, 0)
            if have > len(migrations):
                raise StoreError(
                    f"store schema for {component!r} is version {have}, newer than this release "
                    f"knows ({len(migrations)}); upgrade watchstander"
                )
            for version in range(have + 1, len(migrations) + 1):
                with store.engine.begin() as conn:
                    migrations[version - 1](conn)
                    if version == 1:
                        conn.execute(schema_versions.insert().values(component=component, version=1))
                    else:
                        conn.execute(
                            schema_versions.update()
                            .where(schema_versions.c.component == component)
                            .values(version=version)
                        )
                log.info("store: migrated %s to version %d", component, version)
                current[component] = version
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate store: {exc}") from exc
    return current
