"""Distributed port scans: many sources sharing out one host's ports, none scanning enough alone.

The rule: within `window_s`, at least `ports` distinct ports of one host are probed without an
answer (no SYN-ACK, no UDP reply), by at least `sources` distinct sources, and no single source
probed half of them or more (one source with that many is the port-scan detector's finding).
Memory: at most `max_targets` hosts, each holding at most 4 x `ports` unanswered ports, 256 answered
ports and 64 sources.
"""

from __future__ import annotations

import logging
from collections import Counter

from watchstander.connectors.events import ACK, NETWORK, SYN, Event

from ...config.detectors import ScanDistributedConfig
from ...models import Finding
from .base import Detector, Emit, WindowTable
from .scan_probe import AMBIGUOUS, NAMES, TCP_SYN, Networks, attack_ids, covering_network, probe

log = logging.getLogger(__name__)

OPEN_CAP = 256
SOURCE_CAP = 64
SHOWN_SOURCES = 32
TECHNIQUE_ORDER = tuple(NAMES)
TECHNIQUE_BITS = {t: 1 << i for i, t in enumerate(TECHNIQUE_ORDER)}


class Target:
    """One host's probed ports in the window, who probed them, and which ports answered."""

    __slots__ = ("answered", "finding", "n", "probed", "sources", "start", "techniques")

    def __init__(self, start: float) -> None:
        self.start = start
        self.n = 0
        self.probed: dict[int, str] = {}  # unanswered port -> the first source that probed it
        self.answered: set[int] | None = None  # made on the first answer: most targets never get one
        self.sources: dict[str, int] = {}  # source -> unanswered ports it was first to probe
        self.techniques = 0  # bit i set: technique TECHNIQUE_ORDER[i] was seen
        self.finding: Finding | None = None

    def answer(self, port: int) -> None:
        """`port` answered: a service, not a probe."""
        first = self.probed.pop(port, None)
        if first is not None:
            self.sources[first] -= 1
        if self.answered is None:
            self.answered = set()
        if len(self.answered) < OPEN_CAP:
            self.answered.add(port)


class DistributedScanDetector(Detector):
    """Probes of one host's ports counted across sources; answered ports do not count."""

    id = "scan_distributed"
    kinds = (NETWORK,)
    techniques = ("T1046",)
    title = "Distributed port scan"
    confidence = 0.7
    playbook = "notify-webhook"  # many sources: blocking one achieves nothing

    def __init__(self, config: ScanDistributedConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.targets: WindowTable[Target] = WindowTable(config.window_s, Target, max_keys=config.max_targets)
        self.scanners = Networks(config.scanners)
        self.suppressed: Counter[str] = Counter()  # allow-listed scanner -> probes not counted

    def feed(self, ev: Event) -> None:
        """Count a probe towards its target, or an answer against it."""
        if ev.proto == "tcp":
            flags = ev.flags
            if flags & (SYN | ACK) == SYN | ACK:
                self._answer(ev)
                return
            if flags & ACK:
                return  # the bulk of any network's traffic, and never one of the probes counted here
            technique: str | None = TCP_SYN if flags & SYN else probe(ev)
        else:
            technique = probe(ev)
        if technique is None or technique in AMBIGUOUS:
            if ev.proto == "udp":
                self._answer(ev)
            return
        src, port = ev.src, ev.dport
        if src is None or type(port) is not int:
            return
        if self.scanners.nets and src in self.scanners:
            self.suppressed[src] += 1
            return
        t = self.targets.get(ev.dst, ev.time)
        t.n += 1
        if t.answered is not None and port in t.answered:
            return
        if (port not in t.probed and len(t.probed) < 4 * self.config.ports
                and (src in t.sources or len(t.sources) < SOURCE_CAP)):
            t.probed[port] = src
            t.sources[src] = t.sources.get(src, 0) + 1
        t.techniques |= TECHNIQUE_BITS[technique]
        self._check(t, ev)

    def _answer(self, ev: Event) -> None:
        t = self.targets.states.get(ev.src)
        if t is not None and type(ev.sport) is int:
            t.answer(ev.sport)

    def _check(self, t: Target, ev: Event) -> None:
        cfg = self.config
        unanswered = len(t.probed)
        f = t.finding
        if f is None:
            if unanswered < cfg.ports:
                return
            active = [s for s, n in t.sources.items() if n > 0]
            if len(active) < cfg.sources or max(t.sources.values()) * 2 >= unanswered:
                return
            f = t.finding = self.new_finding(
                self._title(t, ev.dst, len(active), unanswered), "medium", {"victim": ev.dst or "?"}, ev,
                techniques=attack_ids(active[0]), first_seen=t.start, shape="distributed",
                sources=sorted(active)[:SHOWN_SOURCES], source_network=covering_network(active))
        elif f.counts.get("distinct_ports") != unanswered:
            active = [s for s, n in t.sources.items() if n > 0]
            f.title = self._title(t, ev.dst, len(active), unanswered)
            f.attributes["sources"] = sorted(active)[:SHOWN_SOURCES]
            f.counts["distinct_sources"] = len(active)
        f.count = t.n
        f.last_seen = ev.time
        f.counts["distinct_ports"] = unanswered
        f.add_evidence(ev.ref)

    @staticmethod
    def _title(t: Target, dst: str | None, sources: int, ports: int) -> str:
        names = "/".join(NAMES[x] for i, x in enumerate(TECHNIQUE_ORDER) if t.techniques >> i & 1)
        return f"Distributed {names} port scan of {dst} from {sources} sources ({ports} ports)"
