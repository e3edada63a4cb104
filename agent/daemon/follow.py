"""Followed files: new records as they are appended, across rotation and truncation, decoded by format.

Each follower runs inside a barrier: a record its decoder cannot handle is counted and skipped, and
any other failure of one round is logged with the file's name; the follower goes on either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

from watchstander.connectors.barrier import guarded_events
from watchstander.connectors.errors import SourceError
from watchstander.connectors.formats import FORMATS, Format, LineDecoder
from watchstander.connectors.skips import SkipCounter
from watchstander.connectors.sniff import sniff

from ..app.wiring import App
from ..clock import Clock
from .sources import Sink, Source

log = logging.getLogger(__name__)

FOLLOW_INTERVAL_S = 1.0
READ_CHUNK = 4 * 1024 * 1024
MAX_PENDING = 16 * 1024 * 1024


class FollowedFile:
    """Tails one file; its format is sniffed from its first lines and decoded through the format table."""

    def __init__(self, path: Path, clock: Clock, interval: float = FOLLOW_INTERVAL_S,
                 formats: dict[str, Format] | None = None) -> None:
        self.path = path
        self.formats = FORMATS if formats is None else formats
        self.name = f"file:{path.name}"
        self.clock = clock
        self.interval = interval
        self.counters: Counter[str] = Counter()
        self.skips = SkipCounter(log, str(path))
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lines_decoder: LineDecoder | None = None
        self._pos, self._inode, self._pending, self._line = 0, -1, b"", 0

    async def start(self, sink: Sink) -> None:
        """Start following in a task on the loop."""
        self._task = asyncio.create_task(self._follow(sink), name=f"follow {self.path}")

    async def stop(self) -> None:
        """Stop following and wait for the task."""
        self._stop.set()
        if self._task is not None:
            await self._task

    def describe(self) -> str:
        """What it follows."""
        return f"following {self.path}"

    async def _follow(self, sink: Sink) -> None:
        while not self._stop.is_set():
            try:
                self._round(sink)
            except FileNotFoundError:
                pass
            except (OSError, SourceError) as exc:  # SourceError: sniffing found no format, or lost the file
                log.warning("cannot follow %s: %s", self.path, exc)
            except Exception:  # the barrier around this source (STYLE rule 2): log, count, go on
                self.counters["errors"] += 1
                log.exception("following %s failed in one round (%d so far); going on",
                              self.path, self.counters["errors"])
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    def _round(self, sink: Sink) -> None:
        """Read what was appended since the last round and feed its complete lines."""
        st = self.path.stat()
        if self._inode != st.st_ino or st.st_size < self._pos:
            self._pos, self._inode, self._pending, self._line = 0, st.st_ino, b"", 0
        if st.st_size <= self._pos:
            return
        with open(self.path, "rb") as fh:
            fh.seek(self._pos)
            chunk = fh.read(READ_CHUNK)
        self._pos += len(chunk)
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > MAX_PENDING:
            # A line without an end this long is no record any decoder keeps; holding it would let
            # one writer grow the daemon without bound.
            self.skips.skip("overlong line dropped", f"{len(self._pending)} bytes after line {self._line}")
            self._pending = b""
        if self._lines_decoder is None and lines:
            self._lines_decoder = self._decoder()
        if self._lines_decoder is not None:
            first = self._line + 1
            self._line += len(lines)
            self.counters["lines"] += len(lines)
            sink.feed(guarded_events(self._lines_decoder, lines, first, str(self.path)))

    def _decoder(self) -> LineDecoder | None:
        fmt = sniff(self.path)
        make = self.formats[fmt].lines
        if make is None:
            log.warning("cannot follow %s: %s files are not line-based; replay them instead", self.path, fmt)
            self._stop.set()
            return None
        log.info("following %s as %s", self.path, fmt)
        return make(self.name if fmt != "eve" else f"eve:{self.path.name}", self.clock, self.skips)


def followed_files(app: App) -> list[Source]:
    """One follower per [sources] files entry."""
    return [FollowedFile(Path(p), app.clock) for p in app.config.sources.files]
