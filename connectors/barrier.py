"""The barrier around a line decoder in a long-running source: a record that makes it raise is
logged, counted and skipped, and decoding goes on with the next record (STYLE rule 2)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from .events import Event
from .formats import LineDecoder

log = logging.getLogger(__name__)


def guarded_events(decoder: LineDecoder, lines: Sequence[bytes], first_line: int = 1,
                   source: str = "") -> Iterator[Event]:
    """Decode `lines`; a line whose decoding raises is counted in the decoder's skips and passed over."""
    start = 0
    while start < len(lines):
        current = start

        def pulled(begin: int) -> Iterator[bytes]:
            # Both decoders pull one line and yield its events before pulling the next, so the
            # line last pulled is the one being decoded when an exception comes out.
            nonlocal current
            for i in range(begin, len(lines)):
                current = i
                yield lines[i]

        try:
            yield from decoder.events(pulled(start), first_line + start)
            return
        except Exception as exc:  # the barrier around one decoder call (STYLE rule 2)
            decoder.skips.skip(f"decoder error ({type(exc).__name__})", f"line {first_line + current}: {exc}")
            log.debug("%s: decoder raised on line %d", source, first_line + current, exc_info=True)
            start = current + 1
