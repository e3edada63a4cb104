"""Followed files: new records as they are appended, across rotation and truncation, decoded by format."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

from watchstander.connectors.errors import UnknownFormatError
from watchstander.connectors.formats import FORMATS, LineDecoder
from watchstander.connectors.skips import SkipCounter
from watchstander.connectors.sniff import sniff

from ..clock import Clock
from ..config.model import SourcesConfig
from .sources import Sink, Source

log = logging.getLogger(__name__)

FOLLOW_INTERVAL_S = 1.0
READ_CHUNK = 4 * 1024 * 1024


class FollowedFile:
    """Tails one file; its format is sniffed from its first lines and decoded through the format table."""

    def __init__(self, path: Path, clock: Clock, interval: float = FOLLOW_INTERVAL_S) -> None:
        self.path = path
        self.name = f"file:{path.name}"
        self.clock = clock
        self.interval = interval
        self.counters: Counter[str] = Counter()
        self.skips = SkipCounter(log, str(path))
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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
        decoder: LineDecoder | None = None
        pos, inode = 0, None
        pending = b""
        while not self._stop.is_set():
            try:
                st = self.path.stat()
                if inode != st.st_ino or st.st_size < pos:
                    pos, inode, pending = 0, st.st_ino, b""
                if st.st_size > pos:
                    with open(self.path, "rb") as fh:
                        fh.seek(pos)
                        chunk = fh.read(READ_CHUNK)
                    pos += len(chunk)
                    lines = (pending + chunk).split(b"\n")
                    pending = lines.pop()
                    if decoder is None and lines:
                        decoder = self._decoder()
                    if decoder is not None:
                        self.counters["lines"] += len(lines)
                        sink.feed(decoder.events(lines))
            except FileNotFoundError:
                pass
            except (OSError, UnknownFormatError) as exc:
                log.warning("cannot follow %s: %s", self.path, exc)
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    def _decoder(self) -> LineDecoder | None:
        fmt = sniff(self.path)
        make = FORMATS[fmt].lines
        if make is None:
            log.warning("cannot follow %s: %s files are not line-based; replay them instead", self.path, fmt)
            self._stop.set()
            return None
        log.info("following %s as %s", self.path, fmt)
        return make(self.name if fmt != "eve" else f"eve:{self.path.name}", self.clock, self.skips)


def followed_files(config: SourcesConfig, clock: Clock) -> list[Source]:
    """One follower per [sources] files entry."""
    return [FollowedFile(Path(p), clock) for p in config.files]
