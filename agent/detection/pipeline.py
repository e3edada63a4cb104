"""The detection pipeline: Events dispatched by kind to the detectors that consume them."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from time import perf_counter

from watchstander.connectors.events import KINDS, Event
from watchstander.connectors.syslog_messages import SyslogNeeds, union

from ..config.detectors import DetectorsConfig
from ..models import Finding
from .detectors.base import Detector, syslog_needs_of
from .detectors.registry import DETECTORS, build_detectors

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
PROGRESS_EVERY = 16384
SAMPLE_EVERY = 64


def syslog_needs(classes: Iterable[type[Detector]]) -> SyslogNeeds:
    """The syslog lines any of these detector classes needs as `log` events."""
    return union(syslog_needs_of(cls) for cls in classes)


def registered_syslog_needs() -> SyslogNeeds:
    """What every registered detector, enabled or not, needs: a listener's filter stays exact across reloads."""
    return syslog_needs(DETECTORS.values())


class Pipeline:
    """Feeds events to detectors and collects the findings they open."""

    def __init__(self, config: DetectorsConfig) -> None:
        self.findings: list[Finding] = []
        self.detectors = build_detectors(config, self.findings.append)
        self.handlers: dict[str, list[tuple[str, Callable[[Event], None]]]] = {
            kind: [(d.id, d.feed) for d in self.detectors if kind in d.kinds] for kind in KINDS
        }
        self.failures: Counter[str] = Counter()
        self.detector_seconds: defaultdict[str, float] = defaultdict(float)  # sampled; read by metrics
        self.events = 0

    def feed_all(self, events: Iterable[Event], progress: Progress | None = None) -> int:
        """Dispatch every event; returns how many were read. A failing detector is isolated."""
        handlers = self.handlers
        n = 0
        for ev in events:
            n += 1
            hs = handlers.get(ev.kind)
            if hs:
                # Detector time is sampled (one event in SAMPLE_EVERY, scaled up): timing every
                # call would cost more than many detectors do.
                timed = (self.events + n) % SAMPLE_EVERY == 0
                for name, feed in hs:
                    began = perf_counter() if timed else 0.0
                    try:
                        feed(ev)
                    except Exception:  # the barrier around one plugin call (STYLE rule 2)
                        self._failed(name, ev)
                    if timed:
                        self.detector_seconds[name] += (perf_counter() - began) * SAMPLE_EVERY
            if progress is not None and n % PROGRESS_EVERY == 0:
                progress(n)
        self.events += n
        return n

    def _failed(self, name: str, ev: Event) -> None:
        self.failures[name] += 1
        if self.failures[name] <= 5 or self.failures[name] % 10000 == 0:
            log.error("detector %s failed on %s (%d failures so far)", name, ev.ref, self.failures[name],
                      exc_info=log.isEnabledFor(logging.DEBUG))
