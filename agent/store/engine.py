"""The store: SQLite in WAL mode by default, through SQLAlchemy Core so PostgreSQL can follow.

Schema changes are migrations, versioned per component ("core", "audit", "guidance", ...) so that
each part of the agent owns its own tables. A migration is a function that takes a Connection; it
runs inside one transaction together with the version bump.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from .errors import StoreError

log = logging.getLogger(__name__)

Migration = Callable[[Connection], None]

# component -> ordered migrations; migration N (1-based) brings the component to version N.
MIGRATIONS: dict[str, list[Migration]] = {}

_meta = MetaData()
schema_versions = Table(
    "schema_versions", _meta,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)


def register_migrations(component: str, migrations: list[Migration]) -> None:
    """Declare a component's migrations once; a duplicate component raises."""
    if component in MIGRATIONS:
        raise ValueError(f"migrations for {component!r} already registered")
    MIGRATIONS[component] = migrations


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

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open (creating the SQLite file and its folder if needed) and migrate the store at `url`."""
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
    store = Store(engine)
    if migrate:
        _load_component_schemas()
        migrate_store(store)
    return store


def _load_component_schemas() -> None:
    # Importing these modules registers their migrations; kept here so that opening a store
    # always brings every component up to date, whichever command opened it.
    from . import audit, guidance_store, incident_store, playbook_store, review_store  # noqa: F401


def migrate_store(store: Store) -> dict[str, int]:
    """Apply every pending migration of every registered component; returns the new versions."""
    try:
        with store.engine.begin() as conn:
            _meta.create_all(conn)
            current = {r.component: r.version for r in conn.execute(select(schema_versions))}
        for component, migrations in MIGRATIONS.items():
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
