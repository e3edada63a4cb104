"""The findings spool: finding snapshots the store did not take, kept on local disk until it does.

A sensor whose shared store (PostgreSQL) is unreachable keeps detecting; what it found waits
here, in the order it was first spooled, and is delivered oldest first when the store is back.
Each entry is removed only after the store committed it, so a crash re-delivers (never loses)
it; finding upserts are idempotent by the finding's key, so a re-delivery duplicates nothing.

An SQLite file of its own (not JSON lines): a newer snapshot of the same finding replaces the
older one in place (keeping its place in the queue), delivered entries are deleted by sequence
number in one transaction, and a crash mid-write leaves the last committed state, with no
compaction pass to write. WAL and synchronous=FULL; the file is 0600, its folder 0700 when made.

Bounded by entry count and by the bytes of the entries' bodies: when full, the OLDEST entries
are dropped and counted (`dropped`, kept in the file across restarts). A spool file that is not
a database (or fails SQLite's quick check) is renamed aside (`<name>.corrupt-<UTC time>`) and a
new one started; an entry that cannot be decoded is moved to the file's `rejected` table and
counted: neither is silently lost.

One process at a time: opening the spool takes an exclusive lock on `<name>.lock` beside it
(`SpoolLock`, which records the holder's pid), so a second daemon pointed at the same file gets
a SpoolError naming the first instead of interleaving with it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..clock import Clock, system_clock
from ..errors import StoreError
from ..models import SEVERITIES, Finding

log = logging.getLogger(__name__)

FORMAT = 1  # the body's format version, stored in every entry
_SCHEMA = (
    ("CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, "
     "body TEXT NOT NULL, size INTEGER NOT NULL)"),
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    ("CREATE TABLE IF NOT EXISTS rejected (seq INTEGER PRIMARY KEY, key TEXT, body TEXT, reason TEXT NOT NULL, "
     "at TEXT NOT NULL)"),
)
COUNTERS = ("dropped", "delivered", "rejected", "poisoned")


class SpoolError(StoreError):
    """The spool file cannot be opened, read or written (its path and the reason are in the message)."""


class SpoolEntryError(ValueError):
    """One spooled body is not a finding snapshot this release can read."""


def encode(f: Finding) -> str:
    """A finding snapshot as one line of ASCII JSON (lone surrogates and NaN survive the round trip)."""
    return json.dumps({
        "v": FORMAT, "detector": f.detector, "title": f.title, "severity": f.severity,
        "entities": f.entities, "techniques": list(f.techniques), "first_seen": f.first_seen,
        "last_seen": f.last_seen, "count": f.count, "counts": f.counts, "attributes": f.attributes,
        "evidence": f.evidence}, ensure_ascii=True, sort_keys=True, default=str)


def _str_map(value: Any, what: str, kind: type) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and type(v) is kind for k, v in value.items()):
        raise SpoolEntryError(f"{what} is not a map of text to {kind.__name__}")
    return value


def _time(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpoolEntryError(f"{what} is not a number")
    return float(value)


def decode(body: str | bytes) -> Finding:
    """The finding snapshot in `body`, or SpoolEntryError saying what is wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise SpoolEntryError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SpoolEntryError("not a JSON object")
    if data.get("v") != FORMAT:
        raise SpoolEntryError(f"unknown format {data.get('v')!r}")
    detector, title, severity = data.get("detector"), data.get("title"), data.get("severity")
    if not isinstance(detector, str) or not isinstance(title, str):
        raise SpoolEntryError("detector and title must be text")
    if severity not in SEVERITIES:
        raise SpoolEntryError(f"unknown severity {severity!r}")
    techniques, evidence, count = data.get("techniques"), data.get("evidence"), data.get("count")
    if not isinstance(techniques, list) or not all(isinstance(t, str) for t in techniques):
        raise SpoolEntryError("techniques is not a list of text")
    if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
        raise SpoolEntryError("evidence is not a list of text")
    if type(count) is not int:
        raise SpoolEntryError("count is not an integer")
    attributes = data.get("attributes")
    if not isinstance(attributes, dict) or not all(isinstance(k, str) for k in attributes):
        raise SpoolEntryError("attributes is not a map")
    return Finding(detector, title, severity, _str_map(data.get("entities"), "entities", str), tuple(techniques),
                   _time(data.get("first_seen"), "first_seen"), _time(data.get("last_seen"), "last_seen"), count,
                   _str_map(data.get("counts"), "counts", int), attributes, evidence)


def _create_private(path: Path) -> None:
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass


class SpoolLock:
    """The exclusive lock on `<spool>.lock`: one process at a time uses a spool file."""

    def __init__(self, spool_path: Path) -> None:
        self.path = Path(spool_path).with_name(Path(spool_path).name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (once), or raise SpoolError naming the process that holds it."""
        if self._fd is not None:
            return
        try:
            _create_private(self.path)
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise SpoolError(f"cannot create the findings spool's lock {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise SpoolError(f"the findings spool {self.path.with_suffix('')} is in use by another process "
                             f"({'pid ' + holder if holder else 'pid unknown'}, lock {self.path}): "
                             "two daemons cannot share one spool; give each its own [store] spool") from None
        except OSError as exc:
            os.close(fd)
            raise SpoolError(f"cannot lock the findings spool {self.path}: {exc.strerror or exc}") from exc
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:  # the pid is only for the message; the lock holds without it
            log.debug("could not write the pid to %s: %s", self.path, exc)
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (the file stays, empty of meaning until locked again)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


class Spool:
    """An open spool file: put snapshots in, peek the oldest, remove what the store committed."""

    def __init__(self, path: Path, max_findings: int, max_bytes: int, *, clock: Clock = system_clock,
                 lock: SpoolLock | None = None) -> None:
        """Open (creating it private to this user) the spool at `path`; a corrupt file is set aside.

        `lock` is the spool's lock when the caller holds it already (kept by the caller); else the
        spool takes its own and lets it go at `close`. Either way a spool in use elsewhere is a SpoolError.
        """
        if max_findings < 1 or max_bytes < 1:
            raise ValueError("a spool holds at least one finding and one byte")
        self.path = Path(path)
        self.max_findings = max_findings
        self.max_bytes = max_bytes
        self.clock = clock
        self.set_aside: Path | None = None  # where a corrupt file found at open was moved
        # Calls come from worker threads; the connection is shared (check_same_thread=False), so one at a time.
        self._lock = threading.Lock()
        self.depth = 0
        self.bytes = 0
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._own_lock = lock is None
        self.file_lock = SpoolLock(self.path) if lock is None else lock
        self.file_lock.acquire()
        try:
            self._con = self._open_or_set_aside()
        except BaseException:
            if self._own_lock:
                self.file_lock.release()
            raise

    def _open_or_set_aside(self) -> sqlite3.Connection:
        try:
            return self._open()
        except sqlite3.OperationalError as exc:  # cannot open or lock: not a sign of corruption
            raise SpoolError(f"cannot open the findings spool {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            self.set_aside = self._move_aside()
            log.error("the findings spool %s is unreadable (%s); moved aside to %s, starting a new one: the "
                      "findings in it were not delivered", self.path, exc, self.set_aside)
            try:
                return self._open()
            except sqlite3.DatabaseError as again:
                raise SpoolError(f"cannot start a new findings spool at {self.path}: {again}") from again
        except OSError as exc:
            raise SpoolError(f"cannot create the findings spool {self.path}: {exc.strerror or exc}") from exc

    def _open(self) -> sqlite3.Connection:
        _create_private(self.path)
        con = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")  # an entry acknowledged is an entry kept across power loss
            (check,) = con.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            for statement in _SCHEMA:
                con.execute(statement)
            con.executemany("INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)", [(c,) for c in COUNTERS])
            self.depth, total = con.execute("SELECT count(*), coalesce(sum(size), 0) FROM entries").fetchone()
            self.bytes = int(total)
            self.counters = {str(n): int(v) for n, v in con.execute("SELECT name, value FROM counters")}
        except BaseException:
            con.close()
            raise
        return con

    def _move_aside(self) -> Path:
        stamp = self.clock().strftime("%Y%m%dT%H%M%S%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = self.path.with_name(self.path.name + suffix)
            if src.exists():
                try:
                    os.replace(src, aside.with_name(aside.name + suffix))
                except OSError as exc:
                    raise SpoolError(f"the findings spool {self.path} is unreadable and cannot be moved aside: "
                                     f"{exc.strerror or exc}") from exc
        return aside

    @property
    def dropped(self) -> int:
        """Entries dropped, oldest first, to keep within the bounds (ever, in this file)."""
        return self.counters["dropped"]

    @property
    def delivered(self) -> int:
        """Entries the store committed and that were removed (ever, in this file)."""
        return self.counters["delivered"]

    @property
    def rejected(self) -> int:
        """Entries that could not be decoded, moved to the `rejected` table."""
        return self.counters["rejected"]

    def put(self, findings: Iterable[Finding]) -> int:
        """Spool snapshots (a newer one of a spooled finding replaces it in its place); returns how many were dropped."""
        rows = [(f.key, encode(f)) for f in findings]
        if not rows:
            return 0
        with self._lock, self._transaction() as con:
            for key, body in rows:
                size = len(body)  # ASCII: characters are bytes
                con.execute("INSERT INTO entries (key, body, size) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                            "SET body = excluded.body, size = excluded.size", (key, body, size))
            dropped = self._enforce_bounds(con)
        return dropped

    def _enforce_bounds(self, con: sqlite3.Connection) -> int:
        depth, total = con.execute("SELECT count(*), coalesce(sum(size), 0) FROM entries").fetchone()
        drop: list[int] = []
        if depth > self.max_findings or total > self.max_bytes:
            for seq, size in con.execute("SELECT seq, size FROM entries ORDER BY seq"):
                if depth <= self.max_findings and total <= self.max_bytes:
                    break
                drop.append(seq)
                depth -= 1
                total -= size
            con.executemany("DELETE FROM entries WHERE seq = ?", [(s,) for s in drop])
            con.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (len(drop),))
            self.counters["dropped"] += len(drop)
        self.depth, self.bytes = int(depth), int(total)
        return len(drop)

    def peek(self, limit: int) -> list[tuple[int, Finding]]:
        """Up to `limit` of the oldest entries, as (sequence number, finding); undecodable ones are set aside."""
        with self._lock:
            try:
                rows = self._con.execute("SELECT seq, key, body FROM entries ORDER BY seq LIMIT ?", (limit,)).fetchall()
                if not rows and self.depth:
                    # Nothing there though the count says otherwise: trust the file, not the count.
                    self._recount(self._con)
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot read the findings spool {self.path}: {exc}") from exc
            out: list[tuple[int, Finding]] = []
            bad: list[tuple[int, str, str, str]] = []
            for seq, key, body in rows:
                try:
                    out.append((seq, decode(body)))
                except SpoolEntryError as exc:
                    bad.append((seq, key, body, str(exc)))
            if bad:
                self._reject(bad)
        return out

    def _reject(self, bad: Sequence[tuple[int, str, str, str]]) -> None:
        at = self.clock().isoformat()
        with self._transaction() as con:
            con.executemany("INSERT OR REPLACE INTO rejected (seq, key, body, reason, at) VALUES (?, ?, ?, ?, ?)",
                            [(*row, at) for row in bad])
            con.executemany("DELETE FROM entries WHERE seq = ?", [(row[0],) for row in bad])
            con.execute("UPDATE counters SET value = value + ? WHERE name = 'rejected'", (len(bad),))
            self._recount(con)
        self.counters["rejected"] += len(bad)
        for seq, key, _, reason in bad:
            log.error("findings spool %s: entry %d (finding %s) cannot be read (%s); kept in its rejected table",
                      self.path, seq, key, reason)

    def remove(self, seqs: Sequence[int], counter: str = "delivered") -> None:
        """Remove entries the store committed (`delivered`) or refused for good (`poisoned`), counting them."""
        if counter not in ("delivered", "poisoned"):
            raise ValueError(f"not a removal counter: {counter!r}")
        if not seqs:
            return
        with self._lock, self._transaction() as con:
            removed = 0
            for seq in seqs:
                removed += con.execute("DELETE FROM entries WHERE seq = ?", (seq,)).rowcount
            con.execute("UPDATE counters SET value = value + ? WHERE name = ?", (removed, counter))
            self._recount(con)
            self.counters[counter] += removed

    def _recount(self, con: sqlite3.Connection) -> None:
        depth, total = con.execute("SELECT count(*), coalesce(sum(size), 0) FROM entries").fetchone()
        self.depth, self.bytes = int(depth), int(total)

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def close(self) -> None:
        """Close the file (what is in it stays for the next process)."""
        with self._lock:
            try:
                self._con.close()
            finally:
                if self._own_lock:
                    self.file_lock.release()


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT on the spool's connection; sqlite3 errors become SpoolError."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.spool._con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write the findings spool {self.spool.path}: {exc}") from exc
        return self.spool._con

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        con = self.spool._con
        if kind is None:
            try:
                con.execute("COMMIT")
                return
            except sqlite3.Error as failed:
                self._rollback()
                self._restore()
                raise SpoolError(f"cannot write the findings spool {self.spool.path}: {failed}") from failed
        self._rollback()
        self._restore()
        if isinstance(exc, sqlite3.Error):
            raise SpoolError(f"cannot write the findings spool {self.spool.path}: {exc}") from exc

    def _rollback(self) -> None:
        # A failed COMMIT may already have ended the transaction (SQLite rolls back on some errors).
        con = self.spool._con
        if not con.in_transaction:
            return
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the error being raised says more; this one is logged
            log.warning("findings spool %s: rollback failed: %s", self.spool.path, exc)

    def _restore(self) -> None:
        # The in-memory figures follow the file: read them again after a rollback.
        try:
            self.spool._recount(self.spool._con)
            self.spool.counters = {str(n): int(v) for n, v in
                                   self.spool._con.execute("SELECT name, value FROM counters")}
        except sqlite3.Error as exc:  # the figures stay as they were: the file could not be read either
            log.warning("findings spool %s: could not read its figures again after a failed write: %s",
                        self.spool.path, exc)
