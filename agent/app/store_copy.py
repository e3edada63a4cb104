"""Moving a whole store to another engine (one host's SQLite into the shared PostgreSQL), row for row.

Every table the release's migrations create is copied with its primary keys, in foreign-key order,
in one transaction on the target: a failure leaves the target as it was. The target must be new or
empty, and both stores must be at this release's schema versions. Afterwards the row counts of
every table are compared and the audit chain is verified on the target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import Connection, MetaData, Table, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from ..clock import Clock
from ..errors import InputError, StoreError
from ..store.audit import AuditLog
from ..store.engine import Store

BATCH = 2000
_SKIP = frozenset({"schema_versions"})  # the target's own migrations wrote it; versions are compared instead

Progress = Callable[[str, int, int], None]


@dataclass
class CopyReport:
    """What was copied: rows per table, and whether the target's audit chain verified."""

    rows: dict[str, int] = field(default_factory=dict)
    audit_ok: bool = False
    audit_checked: int = 0

    @property
    def total(self) -> int:
        """Rows copied in all."""
        return sum(self.rows.values())


def _tables(store: Store) -> list[Table]:
    meta = MetaData()
    meta.reflect(store.engine)
    return [t for t in meta.sorted_tables if t.name not in _SKIP]


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _batches(conn: Connection, table: Table) -> Iterator[list[dict[str, object]]]:
    order = list(table.primary_key.columns) or list(table.columns)
    result = conn.execution_options(stream_results=True).execute(select(table).order_by(*order))
    while rows := result.fetchmany(BATCH):
        yield [dict(r._mapping) for r in rows]


def _reset_sequences(conn: Connection, table: Table) -> None:
    """After explicit ids, PostgreSQL's serial sequences must continue above them."""
    for column in table.primary_key.columns:
        if column.autoincrement is True or (column.autoincrement == "auto" and column.type.python_type is int):
            # Names come from the reflected schema, not from input; quoted all the same.
            col, tab = f'"{column.name}"', f'"{table.name}"'
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence(:t, :c), COALESCE(MAX({col}), 0) + 1, false) "
                              f"FROM {tab}"), {"t": table.name, "c": column.name})


def copy_store(source: Store, target: Store, clock: Clock, progress: Progress | None = None) -> CopyReport:
    """Copy every row of `source` into the empty, migrated `target`; verify counts and the audit chain."""
    if source.versions() != target.versions():
        raise StoreError(f"schema versions differ (source {source.versions()}, target {target.versions()}): "
                         "open both with this release first")
    tables = _tables(source)
    target_tables = {t.name: t for t in _tables(target)}
    missing = [t.name for t in tables if t.name not in target_tables]
    if missing:
        raise StoreError(f"the target lacks tables {', '.join(missing)}")
    report = CopyReport()
    try:
        with source.engine.connect() as src, target.begin() as dst:
            busy = [name for name, t in target_tables.items() if _count(dst, t)]
            if busy:
                raise InputError(f"the target store is not empty ({', '.join(sorted(busy))}); "
                                 "migrate into a new database")
            for table in tables:
                into = target_tables[table.name]
                total, done = _count(src, table), 0
                for rows in _batches(src, table):
                    dst.execute(into.insert(), rows)
                    done += len(rows)
                    if progress is not None:
                        progress(table.name, done, total)
                if progress is not None and total == 0:
                    progress(table.name, 0, 0)
                report.rows[table.name] = done
                if target.engine.dialect.name == "postgresql":
                    _reset_sequences(dst, into)
            for table in tables:
                copied = _count(dst, target_tables[table.name])
                if copied != report.rows[table.name]:
                    raise StoreError(f"{table.name}: {copied} rows on the target, {report.rows[table.name]} copied")
    except SQLAlchemyError as exc:
        raise StoreError(f"copy failed, the target is unchanged: {exc}") from exc
    result = AuditLog(target, clock).verify()
    report.audit_ok, report.audit_checked = result.ok, result.checked
    return report
