"""What every detector shares: the registry, the emit callback, and bounded windowed state."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

from watchstander.connectors.events import LOG, Event
from watchstander.connectors.syslog_messages import EVERY_LINE, NO_LINE, SyslogNeeds

from ...models import Finding

log = logging.getLogger(__name__)

Emit = Callable[[Finding], None]
S = TypeVar("S")

DEFAULT_MAX_KEYS = 200_000


class Detector:
    """Base class: subclasses declare what they are and what they suggest, and implement `feed`.

    `confidence` is how much one of this detector's findings is worth on its own to the baseline
    analyst; `playbook` is the approved playbook it suggests (None: nothing to suggest), which the
    policy guard still decides on.
    """

    id: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    techniques: ClassVar[tuple[str, ...]]
    title: ClassVar[str]
    confidence: ClassVar[float]
    playbook: ClassVar[str | None] = None
    # Fed only by live device sources (SNMP traps and polls, SSH collection), never by a file that
    # `replay` reads: its samples are the real Debian tools its tests drive, not captures.
    live_only: ClassVar[bool] = False
    # Which ordinary syslog lines (those that become `log` events: no sshd/PAM/dnsmasq meaning) this
    # detector needs; syslog intake builds no Event for a line no detector needs. Read only when
    # `kinds` holds LOG. None (not declared): every line, unless `live_only` (fed by device
    # sources, not syslog: no line). Typed events from syslog (AUTH, DNS) are always built.
    syslog_needs: ClassVar[SyslogNeeds | None] = None

    def __init__(self, config: Any, emit: Emit) -> None:
        self.config = config
        self.emit = emit

    def feed(self, ev: Event) -> None:
        """Consume one event of one of `kinds`."""
        raise NotImplementedError

    def expire(self, now: float) -> None:
        """Drop state older than the window as of event time `now`."""

    def new_finding(self, title: str, severity: str, entities: dict[str, str], ev: Event,
                    techniques: tuple[str, ...] | None = None, first_seen: float | None = None,
                    **attributes: Any) -> Finding:
        """Create, emit and return a finding that starts at `first_seen` (default: at `ev`)."""
        f = Finding(self.id, title, severity, entities,  # type: ignore[arg-type]
                    techniques or self.techniques, ev.time if first_seen is None else first_seen, ev.time,
                    attributes=attributes)
        f.add_evidence(ev.ref)
        self.emit(f)
        return f


def syslog_needs_of(cls: type[Detector]) -> SyslogNeeds:
    """The syslog lines a detector class needs, its declaration resolved (see `Detector.syslog_needs`)."""
    if LOG not in cls.kinds:
        return NO_LINE
    if cls.syslog_needs is not None:
        return cls.syslog_needs
    return NO_LINE if cls.live_only else EVERY_LINE


class WindowTable(Generic[S]):
    """key -> state with a last-seen time; states idle for longer than `window` are evicted.

    Eviction runs whenever event time moves past a quarter window, and a hard cap on the number
    of keys keeps memory flat under floods of spoofed sources.
    """

    def __init__(self, window: float, factory: Callable[[float], S], max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.window = window
        self.factory = factory
        self.max_keys = max_keys
        self.states: dict[Any, S] = {}
        self.seen: dict[Any, float] = {}
        self._next_sweep = float("-inf")

    def get(self, key: Any, ts: float) -> S:
        """The state for `key`, created fresh if absent or idle past the window."""
        seen = self.seen
        last = seen.get(key)
        if last is None or ts - last > self.window:
            if ts >= self._next_sweep or len(seen) >= self.max_keys:
                self.sweep(ts)
            state = self.factory(ts)
            self.states[key] = state
        else:
            state = self.states[key]
        seen[key] = ts
        return state

    def sweep(self, now: float) -> None:
        """Evict idle keys; if still over the cap, drop the oldest half."""
        self._next_sweep = now + self.window / 4
        horizon = now - self.window
        stale = [k for k, t in self.seen.items() if t < horizon]
        for k in stale:
            del self.seen[k]
            del self.states[k]
        if len(self.seen) >= self.max_keys:
            oldest = sorted(self.seen.items(), key=lambda kv: kv[1])[: len(self.seen) // 2]
            log.warning("window table over %d keys: dropping %d oldest", self.max_keys, len(oldest))
            for k, _ in oldest:
                del self.seen[k]
                del self.states[k]

    def __len__(self) -> int:
        return len(self.states)

    def items(self) -> Iterator[tuple[Any, S]]:
        """Every live (key, state)."""
        return iter(self.states.items())


def capped_add(items: set[Any], value: Any, cap: int) -> None:
    """Add to a set unless it already holds `cap` items (counts above the cap are reported as ≥ cap)."""
    if len(items) < cap:
        items.add(value)


class Distinct:
    """Windowed state that counts events and distinct values, and owns the finding once open."""

    __slots__ = ("finding", "items", "n", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.n = 0
        self.items: set[Any] = set()
        self.finding: Finding | None = None

    def add(self, value: Any, cap: int) -> None:
        """Count one event and remember its distinct value (up to `cap` values)."""
        self.n += 1
        if len(self.items) < cap:
            self.items.add(value)

    def open(self, det: Detector, title: str, severity: str, entities: dict[str, str], ev: Event,
             techniques: tuple[str, ...] | None = None, **attributes: Any) -> Finding:
        """Open the finding; it starts when the window's activity started."""
        self.finding = det.new_finding(title, severity, entities, ev, techniques=techniques,
                                       first_seen=self.start, **attributes)
        return self.finding

    def update(self, ev: Event, distinct_name: str) -> None:
        """Bring the open finding (if any) up to date with this event."""
        f = self.finding
        if f is None:
            return
        f.count = self.n
        f.last_seen = ev.time
        f.counts[distinct_name] = len(self.items)
        f.add_evidence(ev.ref)
