"""Every component's tables in one table, and opening a store brought up to date with all of them.

A component that owns tables declares `SCHEMA = Component(name, migrations)` in its own module and
gets one row here; nothing is registered by import side effects.
"""

from __future__ import annotations

from . import approvals, audit, guidance, incidents, offsets, runs, snapshots, suggestions
from . import lateral as lateral_memory
from sqlalchemy.exc import OperationalError

from .cluster import SCHEMA as CLUSTER_SCHEMA
from .engine import Component, Store, check_store, connect, migrate_store

COMPONENTS: tuple[Component, ...] = (
    audit.SCHEMA,
    incidents.SCHEMA,
    approvals.SCHEMA,
    suggestions.SCHEMA,
    guidance.SCHEMA,
    runs.SCHEMA,
    snapshots.SCHEMA,
    offsets.SCHEMA,
    lateral_memory.SCHEMA,
    CLUSTER_SCHEMA,
)


def open_store(url: str, *, migrate: bool = True, read_only: bool = False) -> Store:
    """Open the store at `url` and (unless told not to) apply every component's pending migrations.

    `read_only`: open it for commands that only read -- never migrated or written, and a
    StoreError unless every component's schema is the one this release expects.
    """
    store = connect(url, read_only=read_only)
    try:
        if read_only:
            check_store(store, COMPONENTS)
        elif migrate:
            migrate_store(store, COMPONENTS)
    except BaseException:
        store.close()
        raise
    return store


def server_answers(url: str) -> bool:
    """Whether the database server at `url` accepts a connection now (for a sensor deciding to start without it)."""
    store = connect(url)
    try:
        with store.engine.connect():
            return True
    except OperationalError:  # refused, timed out, unknown host, authentication the server refused
        return False
    finally:
        store.close()
