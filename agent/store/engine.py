"""The store's engine: SQLite in WAL mode by default, through SQLAlchemy Core so PostgreSQL can follow.

Schema changes are migrations, versioned per component ("core", "audit", "guidance", ...) so that
each part of the agent owns its own tables. A migration is a function that takes a Connection; it
runs inside one transaction together with the version bump. The engine knows no component: each
component module declares its `SCHEMA`, and `schema.py` lists them all in one table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from ..errors import StoreError

log = logging.getLogger(__name__)

Migration = Callable[[Connection], None]

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
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class Store:
    """An opened, migrated database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction (committed on success, rolled back on error)."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"store operation failed: {exc.orig}") from exc

    def versions(self) -> dict[str, int]:
        """The schema version of every component."""
        with self.engine.connect() as conn:
            return {row.component: row.version for row in conn.execute(select(schema_versions))}

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


def connect(url: str) -> Store:
    """Open the store at `url`, creating the SQLite file and its folder if needed; no migrations."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"bad store URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        db_path = Path(parsed.database)
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as exc:
            raise StoreError(f"cannot create {db_path.parent}: {exc.strerror}") from exc
    try:
        engine = create_engine(url, future=True)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot open store {url!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return Store(engine)


def migrate_store(store: Store, components: Sequence[Component]) -> dict[str, int]:
    """Apply every pending migration of every component; returns the new versions."""
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
