"""The barrier around a line decoder in a long-running source: a record that makes it raise is
logged, counted and skipped, and decoding goes on with the next record (STYLE rule 2)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from .events import Event
from .skips import SkipCounter

if TYPE_CHECKING:  # the formats table imports every reader (scapy included): types only here
    from .formats import LineDecoder

log = logging.getLogger(__name__)
T = TypeVar("T", bytes, str)


def guarded(decode: Callable[[Iterator[T], int], Iterable[Event]], skips: SkipCounter, lines: Sequence[T],
            first_line: int = 1, source: str = "") -> Iterator[Event]:
    """Decode `lines` with `decode(lines, first_line)`; a line that makes it raise is counted in `skips` and passed over."""
    start = 0
    while start < len(lines):
        current = start

        def pulled(begin: int) -> Iterator[T]:
            # Both decoders pull one line and yield its events before pulling the next, so the
            # line last pulled is the one being decoded when an exception comes out.
            nonlocal current
            for i in range(begin, len(lines)):
                current = i
                yield lines[i]

        try:
            yield from decode(pulled(start), first_line + start)
            return
        except Exception as exc:  # the barrier around one decoder call (STYLE rule 2)
            skips.skip(f"decoder error ({type(exc).__name__})", f"line {first_line + current}: {exc}")
            log.debug("%s: decoder raised on line %d", source, first_line + current, exc_info=True)
            start = current + 1


def guarded_events(decoder: LineDecoder, lines: Sequence[bytes], first_line: int = 1,
                   source: str = "") -> Iterator[Event]:
    """Decode raw `lines` with a line decoder, behind the barrier."""
    return guarded(decoder.events, decoder.skips, lines, first_line, source)
