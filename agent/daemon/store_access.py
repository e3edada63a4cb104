"""Whether the daemon can use its store: a SQLite file it may write (owner and mode named when not),
a network server that answers, and which errors mean the store is away rather than refusing.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from ..errors import StoreError
from ..store.engine import Store

# Errors that say the store cannot be written now, whatever is in the batch: retry it whole (spooled).
# The SQLAlchemy ones reach here raw from reads outside `Store.begin` (a dead PostgreSQL server, a pool
# with no free connection); the store layer should translate them into StoreError one day.
STORE_UNAVAILABLE = (StoreError, OSError, OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


def _account(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group(gid: int) -> str:
    try:
        return f"{grp.getgrgid(gid).gr_name} (gid {gid})"
    except KeyError:
        return f"gid {gid}"


def _describe(path: Path, st: os.stat_result) -> str:
    return (f"{path} (owner {_account(st.st_uid)}, group {_group(st.st_gid)}, "
            f"mode {stat.S_IMODE(st.st_mode):04o})")


def store_write_problem(url: str) -> str | None:
    """Why this process cannot write the SQLite store at `url`, naming the file, its owner and mode; or None."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:") or database.startswith("file:"):
        return None
    db = Path(database).absolute()
    me = _account(os.geteuid())
    folder = db.parent
    try:
        if db.exists():
            if not os.access(db, os.R_OK | os.W_OK):
                return f"the store {_describe(db, db.stat())} cannot be written by {me}"
            # WAL mode writes two files beside the database: they must be ours to write, or creatable.
            for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                if extra.exists() and not os.access(extra, os.R_OK | os.W_OK):
                    return f"the store's {_describe(extra, extra.stat())} cannot be written by {me}"
                if not extra.exists() and not os.access(folder, os.W_OK | os.X_OK):
                    return (f"the store's folder {_describe(folder, folder.stat())} does not let {me} "
                            f"create {extra.name}")
        else:
            existing = next(p for p in (folder, *folder.parents) if p.exists())
            if not os.access(existing, os.W_OK | os.X_OK):
                return f"the store {db} cannot be created: {_describe(existing, existing.stat())} is not writable by {me}"
    except OSError as exc:
        return f"the store {db} cannot be checked: {exc.strerror}"
    return None


def is_network_store(url: str) -> bool:
    """Whether the store is a server reached over the network (PostgreSQL), not a local SQLite file."""
    return make_url(url).get_backend_name() != "sqlite"


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the store cannot be reached (rather than that it answered with a problem)."""
    connection = (OSError, OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)
    while exc is not None:
        if isinstance(exc, connection):
            return True
        if not isinstance(exc, StoreError):
            return False
        cause = exc.__cause__
        if cause is None:
            return False
        exc = cause
    return False


def probe_store_write(store: Store, url: str) -> None:
    """Write (and keep unchanged) one row of the store, or raise StoreError naming the file, owner and mode."""
    try:
        with store.begin() as conn:
            conn.execute(text("UPDATE schema_versions SET version = version"))
    except StoreError as exc:
        problem = store_write_problem(url)
        raise StoreError(f"{problem}: {exc}" if problem else f"the store cannot be written: {exc}") from exc
