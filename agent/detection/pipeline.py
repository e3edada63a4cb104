"""The detection pipeline: Events dispatched by kind to the detectors that consume them."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from time import perf_counter

from watchstander.connectors.events import KINDS, NETWORK, Event
from watchstander.connectors.syslog_messages import SyslogNeeds, union

from ..config.detectors import DetectorsConfig
from ..models import Finding
from .detectors.addresses import NetworkSet
from .detectors.base import Detector, syslog_needs_of
from .detectors.registry import DETECTORS, build_detectors

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
PROGRESS_EVERY = 16384
SAMPLE_EVERY = 64

Handlers = list[tuple[str, Callable[[Event], None]]]
# routes[source inside][destination inside]: the network handlers for an event with those ends
Routes = tuple[tuple[Handlers, Handlers], tuple[Handlers, Handlers]]


def syslog_needs(classes: Iterable[type[Detector]]) -> SyslogNeeds:
    """The syslog lines any of these detector classes needs as `log` events."""
    return union(syslog_needs_of(cls) for cls in classes)


def registered_syslog_needs() -> SyslogNeeds:
    """What every registered detector, enabled or not, needs: a listener's filter stays exact across reloads."""
    return syslog_needs(DETECTORS.values())


def _internal(det: Detector) -> NetworkSet | None:
    internal = getattr(det, "internal", None)
    return internal if isinstance(internal, NetworkSet) else None


def network_ends_of(det: Detector) -> frozenset[tuple[bool, bool]] | None:
    """The (source inside, destination inside) ends of the network events `det` needs; None: every event.

    A detector declares them as the class attribute `network_ends`, judged on its own `internal`
    NetworkSet: it promises that its `feed` ignores every network event with other ends.
    """
    ends = getattr(type(det), "network_ends", None)
    if not isinstance(ends, frozenset) or _internal(det) is None or NETWORK not in det.kinds:
        return None
    return ends


def share_internal_networks(detectors: list[Detector]) -> None:
    """Give detectors whose `internal` networks are equal one NetworkSet between them.

    Its answers depend on the networks alone, so this changes no result: the lookups of one event's
    addresses (by the router below and by each detector) then hit one warm cache, not three.
    """
    first: dict[tuple[object, ...], NetworkSet] = {}
    for d in detectors:
        internal = _internal(d)
        if internal is not None:
            setattr(d, "internal", first.setdefault(internal.networks, internal))  # noqa: B010


def network_routes(detectors: list[Detector]) -> tuple[NetworkSet, Routes] | None:
    """Network handlers by where an event's ends lie, when detectors declare the ends they need.

    Only detectors whose `internal` networks equal those of the first declaring detector are
    routed (the common case: one site address space); any other is always called.
    """
    inside = next((_internal(d) for d in detectors if network_ends_of(d) is not None), None)
    if inside is None:
        return None

    def route(src_in: bool, dst_in: bool) -> Handlers:
        out: Handlers = []
        for d in detectors:
            ends, internal = network_ends_of(d), _internal(d)
            if NETWORK not in d.kinds or (ends is not None and internal is not None
                                          and internal.networks == inside.networks and (src_in, dst_in) not in ends):
                continue
            out.append((d.id, d.feed))
        return out

    return inside, ((route(False, False), route(False, True)), (route(True, False), route(True, True)))


class Pipeline:
    """Feeds events to detectors and collects the findings they open."""

    def __init__(self, config: DetectorsConfig, *, route_network: bool = True) -> None:
        self.findings: list[Finding] = []
        self.detectors = build_detectors(config, self.findings.append)
        self.handlers: dict[str, Handlers] = {
            kind: [(d.id, d.feed) for d in self.detectors if kind in d.kinds] for kind in KINDS
        }
        # Network events skip the detectors that declared they ignore events with such ends
        # (route_network=False calls every one: the equivalence tests compare both).
        if route_network:
            share_internal_networks(self.detectors)
        self.routes = network_routes(self.detectors) if route_network else None
        self.failures: Counter[str] = Counter()
        self.detector_seconds: defaultdict[str, float] = defaultdict(float)  # sampled; read by metrics
        self.events = 0

    def feed_all(self, events: Iterable[Event], progress: Progress | None = None) -> int:
        """Dispatch every event; returns how many were read. A failing detector is isolated."""
        handlers = self.handlers
        failed = self._failed
        inside, routes = self.routes if self.routes is not None else (NetworkSet(()), None)
        # Detector time is sampled (one event in SAMPLE_EVERY, scaled up): timing every call would
        # cost more than many detectors do, so the other events take a loop with no clock in it.
        countdown = SAMPLE_EVERY - 1 - self.events % SAMPLE_EVERY
        n = 0
        for ev in events:
            n += 1
            kind = ev.kind
            hs: Handlers | None
            if kind == NETWORK and routes is not None:
                hs = routes[ev.src in inside][ev.dst in inside]
            else:
                hs = handlers.get(kind)
            if hs:
                if countdown:
                    for name, feed in hs:
                        try:
                            feed(ev)
                        except Exception:  # noqa: BLE001 -- the barrier around one plugin call (STYLE rule 2)
                            failed(name, ev)
                else:
                    self._feed_timed(hs, ev)
            if countdown:
                countdown -= 1
            else:
                countdown = SAMPLE_EVERY - 1
            if progress is not None and n % PROGRESS_EVERY == 0:
                progress(n)
        self.events += n
        return n

    def _feed_timed(self, hs: Handlers, ev: Event) -> None:
        seconds = self.detector_seconds
        for name, feed in hs:
            began = perf_counter()
            try:
                feed(ev)
            except Exception:  # noqa: BLE001 -- the barrier around one plugin call (STYLE rule 2)
                self._failed(name, ev)
            seconds[name] += (perf_counter() - began) * SAMPLE_EVERY

    def _failed(self, name: str, ev: Event) -> None:
        self.failures[name] += 1
        if self.failures[name] <= 5 or self.failures[name] % 10000 == 0:
            log.error("detector %s failed on %s (%d failures so far)", name, ev.ref, self.failures[name],
                      exc_info=log.isEnabledFor(logging.DEBUG))
