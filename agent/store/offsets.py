"""Where each followed file was read up to when the last flush was stored (component "offsets").

One row per followed path: the file it was (device, inode and a hash of its first bytes, so that a
file replaced under the same name, even one that got the old inode, is told apart), the byte offset
just after the last line whose findings are stored, and that line's number. A daemon that starts
again resumes there, so a crash loses nothing a file holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table, select

from ..clock import Clock
from .engine import Component, Store

_meta = MetaData()

followed_offsets = Table(
    "followed_offsets", _meta,
    Column("path", String(4096), primary_key=True),
    # Text, not integers: st_dev and st_ino are unsigned 64-bit and may not fit a signed column.
    Column("device", String(24), nullable=False),
    Column("inode", String(24), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("line", BigInteger, nullable=False),
    Column("head_len", Integer, nullable=False),       # how many first bytes head_sha256 covers
    Column("head_sha256", String(64), nullable=False),
    Column("updated_at", String(40), nullable=False),
)


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


SCHEMA = Component("offsets", (_v1,))


@dataclass(frozen=True)
class FileOffset:
    """A followed file's stored position: which file it was, and the offset and line read up to."""

    path: str
    device: int
    inode: int
    offset: int
    line: int
    head_len: int
    head_sha256: str


class OffsetStore:
    """Reads and saves the positions of followed files."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def get(self, path: str) -> FileOffset | None:
        """The stored position of `path`, or None if it was never saved."""
        with self.store.begin() as conn:
            row = conn.execute(select(followed_offsets).where(followed_offsets.c.path == path)).first()
        if row is None:
            return None
        return FileOffset(row.path, int(row.device), int(row.inode), int(row.offset), int(row.line),
                          int(row.head_len), row.head_sha256)

    def save(self, pos: FileOffset) -> None:
        """Insert or replace the position of `pos.path`."""
        values = {"device": str(pos.device), "inode": str(pos.inode), "offset": pos.offset, "line": pos.line,
                  "head_len": pos.head_len, "head_sha256": pos.head_sha256, "updated_at": self.clock().isoformat()}
        with self.store.begin() as conn:
            done = conn.execute(followed_offsets.update().where(followed_offsets.c.path == pos.path)
                                .values(**values))
            if done.rowcount == 0:
                conn.execute(followed_offsets.insert().values(path=pos.path, **values))
