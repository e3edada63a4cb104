"""Sources: what feeds the daemon events. One small interface, one registry, one line per source kind.

A source is started on the daemon's event loop with a `Sink`; it hands events to the sink and
keeps its own counters. Sources that run in a thread of their own (a live capture, say) use
`Sink.feed_threadsafe`, which hops onto the loop, so detectors only ever run on the loop thread.

Adding a source kind: a module in this package with a class that implements `Source` and a
`SourceFactory` that builds its instances from the config, its keys in `[sources]`, and one row in
`registry.SOURCE_KINDS` (the daemon itself needs no change).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from watchstander.connectors.events import Event

if TYPE_CHECKING:  # the App pulls in the whole application (langchain included): types only here
    from ..app.wiring import App


class Sink:
    """Where sources put events: the daemon's detectors, always on the event loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, feed: Callable[[Iterable[Event]], None]) -> None:
        self.loop = loop
        self.feed = feed

    def feed_threadsafe(self, events: list[Event]) -> None:
        """Hand events over from another thread; they are fed on the loop, in order."""
        self.loop.call_soon_threadsafe(self.feed, events)


class Source(Protocol):
    """One running input of the daemon."""

    name: str
    counters: Counter[str]

    async def start(self, sink: Sink) -> None:
        """Open sockets or files and begin handing events to `sink`; raises OSError if it cannot."""

    async def stop(self) -> None:
        """Stop taking input and release what start() opened."""

    def describe(self) -> str:
        """Where it listens or what it reads, for the start-up log line."""


@runtime_checkable
class Checkpointing(Protocol):
    """A source that can resume after a crash (a followed file): it saves its position once stored."""

    def mark(self) -> None:
        """Remember the position of everything fed so far (called just before a flush's snapshot)."""

    def flushed(self) -> None:
        """The last marked position is now stored: persist it (called after the flush committed)."""


# A factory reads what it needs from the App: [sources] and the clock, and for some the inventory
# (polling, collection) or the store (followed files' offsets, configuration snapshots).
SourceFactory = Callable[["App"], list[Source]]


def build_sources(app: App, kinds: dict[str, SourceFactory]) -> list[Source]:
    """Every configured source, kind by kind in the registry's order."""
    return [source for factory in kinds.values() for source in factory(app)]


def split_host_port(hostport: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' as (host, port)."""
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)
