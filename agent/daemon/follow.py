"""Followed files: new records as they are appended, across rotation and truncation, decoded by format.

Each follower runs inside a barrier: a record its decoder cannot handle is counted and skipped, and
any other failure of one round is logged with the file's name; the follower goes on either way.

Reading: while a file has unread bytes the follower reads it a chunk at a time, feeds the chunk's
complete lines to the detectors and yields to the loop before the next chunk, so it reads as fast
as detection keeps up; at the end of the file it waits `interval` seconds. Memory is bounded while
reading: an unfinished line is held up to `max_message` bytes; a longer one is counted as skipped
and dropped up to its newline.

Where it starts: a file whose position was stored by an earlier run is resumed at that position
when it is still the same file (same device and inode, same first bytes, not shorter); a file
replaced or truncated meanwhile is read from its start, as is a file that appears while followed.
A file seen for the first time (no stored position) is followed from its end, as `tail -F` does:
its history is for `watchstander replay`.

Checkpointing: `mark()` takes the offset just after the last line fed to the detectors (the
daemon calls it just before a flush's snapshot, with no await in between, so it matches that
snapshot exactly), and `flushed()` stores it once the flush committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import weakref
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from watchstander.connectors.barrier import guarded_events
from watchstander.connectors.errors import SourceError, UnknownFormatError
from watchstander.connectors.formats import FORMATS, Format, LineDecoder
from watchstander.connectors.skips import SkipCounter
from watchstander.connectors.sniff import sniff

from ..app.wiring import App
from ..clock import Clock
from ..store.engine import Store
from ..store.offsets import FileOffset, OffsetStore
from .sources import Sink, Source

log = logging.getLogger(__name__)

FOLLOW_INTERVAL_S = 1.0
READ_CHUNK = 256 * 1024  # per round: bounds how long one round holds the loop (detection of ~3,000 lines)
MAX_MESSAGE = 1024 * 1024  # the largest [sources] max_message; the daemon passes the configured one
HEAD_BYTES = 4096
SNIFF_BYTES = 65536

# Where followers stopped in this process, by store and path: the followers a reload starts again
# take over from there, not from the store, whose position may be older if the reload's flush failed
# (the lines in between are already in the detectors).
_HANDOVER: weakref.WeakKeyDictionary[Store, dict[str, FileOffset]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class _Mark:
    device: int
    inode: int
    offset: int
    line: int
    head: tuple[int, str]  # (length, sha256) of the file's first bytes, up to the offset


class FollowedFile:
    """Tails one file; its format is sniffed from its first lines and decoded through the format table."""

    def __init__(self, path: Path, clock: Clock, interval: float = FOLLOW_INTERVAL_S,
                 formats: dict[str, Format] | None = None, *, max_message: int = MAX_MESSAGE,
                 offsets: OffsetStore | None = None, chunk: int = READ_CHUNK) -> None:
        self.path = path
        self.formats = FORMATS if formats is None else formats
        self.name = f"file:{path.name}"
        self.clock = clock
        self.interval = interval
        self.max_message = max_message
        self.offsets = offsets
        self.chunk = chunk
        # lines: complete lines read; bytes: bytes read; skipped_overlong: lines over max_message;
        # rotations: files replaced or truncated under the path; resumed: starts at a stored
        # position; errors: rounds that failed; checkpoint_errors: positions that could not be stored.
        self.counters: Counter[str] = Counter()
        self._last_problem: str | None = None
        self.skips = SkipCounter(log, str(path))
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lines_decoder: LineDecoder | None = None
        self._fh: BinaryIO | None = None
        self._dev, self._inode = -1, -1
        self._pos = 0                 # bytes read from the open file
        self._line_start = 0          # offset where the unfinished line begins
        self._line = 0                # complete lines consumed (fed or skipped)
        self._pending = bytearray()   # the unfinished line, at most max_message bytes
        self._discarding = False      # inside an overlong line: drop up to the next newline
        self._first = True            # the first look at the path since start
        self._head: tuple[int, str] = (0, hashlib.sha256().hexdigest())
        self._marked: _Mark | None = None
        self._saved: _Mark | None = None

    async def start(self, sink: Sink) -> None:
        """Start following in a task on the loop."""
        self._task = asyncio.create_task(self._follow(sink), name=f"follow {self.path}")

    async def stop(self) -> None:
        """Stop following and wait for the task."""
        self._stop.set()
        if self._task is not None:
            await self._task
        self._close()
        if self.offsets is not None and self._inode >= 0:
            _HANDOVER.setdefault(self.offsets.store, {})[str(self.path)] = FileOffset(
                str(self.path), self._dev, self._inode, self._line_start, self._line, *self._head)

    def describe(self) -> str:
        """What it follows."""
        return f"following {self.path}"

    def mark(self) -> None:
        """Remember the offset just after the last line fed to the detectors."""
        if self._inode >= 0:
            self._refresh_head()
            self._marked = _Mark(self._dev, self._inode, self._line_start, self._line, self._head)

    def flushed(self) -> None:
        """Store the last marked offset (the findings up to it are stored)."""
        mark = self._marked
        if self.offsets is None or mark is None or mark == self._saved:
            return
        head_len, head_hash = mark.head
        try:
            self.offsets.save(FileOffset(str(self.path), mark.device, mark.inode, mark.offset, mark.line,
                                         head_len, head_hash))
        except Exception:
            self.counters["checkpoint_errors"] += 1
            raise
        self._saved = mark

    async def _follow(self, sink: Sink) -> None:
        while not self._stop.is_set():
            more = False
            try:
                more = self._round(sink)
                if self._last_problem is not None:
                    log.info("following %s again", self.path)
                    self._last_problem = None
            except FileNotFoundError:
                self._first = False  # a file that appears later is new: read from its start
            except (OSError, SourceError) as exc:  # SourceError: sniffing found no format, or lost the file
                # Once per distinct problem, not every round: a file it may not read stays unreadable.
                problem = f"{type(exc).__name__}: {exc}"
                if problem != self._last_problem:
                    self._last_problem = problem
                    log.warning("cannot follow %s: %s", self.path, exc)
                self.counters["unreadable_rounds"] += 1
            except Exception:  # the barrier around this source (STYLE rule 2): log, count, go on
                self.counters["errors"] += 1
                log.exception("following %s failed in one round (%d so far); going on",
                              self.path, self.counters["errors"])
            if more:
                await asyncio.sleep(0)  # let the loop serve other sources between chunks
                continue
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval)
            except TimeoutError:
                pass

    def _round(self, sink: Sink) -> bool:
        """Read one chunk and feed its complete lines; True when more may be waiting."""
        if self._fh is None:
            self._open()
        assert self._fh is not None
        data = self._fh.read(self.chunk)
        if not data:
            self._check_replaced()
            return False
        self._pos += len(data)
        self.counters["bytes"] += len(data)
        for first, lines in self._split(data):
            if self._lines_decoder is None:
                self._lines_decoder = self._decoder(lines)
            if self._lines_decoder is not None:
                self.counters["lines"] += len(lines)
                sink.feed(guarded_events(self._lines_decoder, lines, first, str(self.path)))
        return len(data) == self.chunk

    def _split(self, data: bytes) -> list[tuple[int, list[bytes]]]:
        """The complete lines of `data` after what is pending, in runs of (first line number, lines).

        Each line is at most max_message bytes: a longer one is counted and left out, which splits
        the lines around it into two runs (their numbers stay those of the file).
        """
        start = 0
        if self._discarding:
            nl = data.find(b"\n")
            if nl < 0:
                return []
            self._discarding = False
            self._line += 1
            start = nl + 1
            self._line_start = self._pos - len(data) + start
        cut = data.rfind(b"\n")
        if cut < start:
            self._keep(data, start)
            return []
        lines = data[start:cut].split(b"\n")
        if self._pending:
            lines[0] = bytes(self._pending) + lines[0]
            self._pending.clear()
        first_line = self._line + 1
        self._line += len(lines)
        self._line_start = self._pos - len(data) + cut + 1
        self._keep(data, cut + 1)
        limit = self.max_message
        if not any(len(line) > limit for line in lines):
            return [(first_line, lines)]
        runs: list[tuple[int, list[bytes]]] = []
        run_first, run = first_line, list[bytes]()
        for n, line in enumerate(lines, first_line):
            if len(line) > limit:
                self._skip_overlong(n, len(line))
                if run:
                    runs.append((run_first, run))
                run_first, run = n + 1, []
            else:
                run.append(line)
        if run:
            runs.append((run_first, run))
        return runs

    def _keep(self, data: bytes, start: int) -> None:
        """Hold the unfinished end of `data`, or start discarding it if the line is too long."""
        if len(self._pending) + len(data) - start > self.max_message:
            # A line without an end this long is no record any decoder keeps; holding it would let
            # one writer grow the daemon without bound.
            self._skip_overlong(self._line + 1, len(self._pending) + len(data) - start)
            self._pending.clear()
            self._discarding = True
        else:
            self._pending += data[start:]

    def _skip_overlong(self, line: int, size: int) -> None:
        self.counters["skipped_overlong"] += 1
        self.skips.skip("overlong line dropped", f"line {line}: over {self.max_message} bytes ({size} read)")

    def _open(self) -> None:
        """Open the path and place the reading position: stored, end (first sight) or start."""
        fh = open(self.path, "rb")  # noqa: SIM115  (kept open across rounds, closed in _close)
        st = os.fstat(fh.fileno())
        first, self._first = self._first, False
        self._close()
        self._fh, self._dev, self._inode = fh, st.st_dev, st.st_ino
        self._pending.clear()
        self._discarding = False
        self._head = (0, hashlib.sha256().hexdigest())
        offset, line = 0, 0
        stored, where = None, "where the last run stored it"
        if first and self.offsets is not None:
            stored = _HANDOVER.get(self.offsets.store, {}).pop(str(self.path), None)
            if stored is not None:
                where = "where it was before the reload"
            else:
                stored = self.offsets.get(str(self.path))
        if stored is not None:
            if self._same_file(stored, st):
                offset, line = stored.offset, stored.line
                self.counters["resumed"] += 1
                log.info("following %s: resuming at byte %d (line %d) %s", self.path, offset, line, where)
            else:
                log.info("following %s: replaced or truncated since the last run; reading it from the start",
                         self.path)
        elif first:
            offset = st.st_size  # first sight: as tail -F, history is for `watchstander replay`
            log.info("following %s from its end (%d bytes; first start)", self.path, offset)
        fh.seek(offset)
        self._pos = self._line_start = offset
        self._line = line

    def _same_file(self, stored: FileOffset, st: os.stat_result) -> bool:
        if (stored.device, stored.inode) != (st.st_dev, st.st_ino) or st.st_size < stored.offset:
            return False
        assert self._fh is not None
        head = os.pread(self._fh.fileno(), stored.head_len, 0)
        return len(head) == stored.head_len and hashlib.sha256(head).hexdigest() == stored.head_sha256

    def _check_replaced(self) -> None:
        """At the end of the open file: switch to a new file under the path, or start over if truncated."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return  # rotated away and not yet recreated: keep the old one open until it is
        assert self._fh is not None
        if (st.st_dev, st.st_ino) != (self._dev, self._inode):
            self.counters["rotations"] += 1
            log.info("following %s: replaced (rotated); reading the new file from its start", self.path)
            self._open()
        elif st.st_size < self._pos:
            self.counters["rotations"] += 1
            log.info("following %s: truncated; reading it from the start", self.path)
            self._fh.seek(0)
            self._pos = self._line_start = self._line = 0
            self._pending.clear()
            self._discarding = False
            self._head = (0, hashlib.sha256().hexdigest())

    def _refresh_head(self) -> None:
        """Hash the open file's first bytes (up to HEAD_BYTES, never past the last line read)."""
        want = min(HEAD_BYTES, self._line_start)
        if self._head[0] < want and self._fh is not None:
            head = os.pread(self._fh.fileno(), want, 0)
            self._head = (len(head), hashlib.sha256(head).hexdigest())

    def _close(self) -> None:
        if self._fh is not None:
            self._refresh_head()  # the daemon's last flush marks after stop()
            self._fh.close()
            self._fh = None

    def _decoder(self, sample: list[bytes]) -> LineDecoder | None:
        try:
            fmt = sniff(self.path)
        except UnknownFormatError:
            # The head may be no record at all (one endless line, dropped); what we follow is what
            # was appended, so sniff that.
            fmt = _sniff_lines(sample)
        make = self.formats[fmt].lines
        if make is None:
            log.warning("cannot follow %s: %s files are not line-based; replay them instead", self.path, fmt)
            self._stop.set()
            return None
        log.info("following %s as %s", self.path, fmt)
        decoder = make(self.name if fmt != "eve" else f"eve:{self.path.name}", self.clock, self.skips)
        prime = getattr(decoder, "prime", None)
        if prime is not None and self._fh is not None:
            # A format whose rows depend on header lines at the top (Zeek TSV's #fields) must read
            # them even when following starts mid-file (resumed offset, or a file found non-empty).
            prime(os.pread(self._fh.fileno(), SNIFF_BYTES, 0))
        return decoder


def _sniff_lines(lines: list[bytes]) -> str:
    """The format of `lines`, by the same rules as a file's (sniff reads a path: an in-memory file)."""
    fd = os.memfd_create("watchstander-sniff", os.MFD_CLOEXEC)
    try:
        os.write(fd, b"\n".join(lines[:20])[:SNIFF_BYTES] + b"\n")
        fmt: str = sniff(f"/proc/self/fd/{fd}")
        return fmt
    finally:
        os.close(fd)


def followed_files(app: App) -> list[Source]:
    """One follower per [sources] files entry, resuming where the last run's stored flush left it."""
    offsets = OffsetStore(app.store, app.clock)
    return [FollowedFile(Path(p), app.clock, max_message=app.config.sources.max_message, offsets=offsets)
            for p in app.config.sources.files]
