"""Beaconing: an internal host connecting to one external destination at a regular period.

A connection start is a flow record (for TCP, one that saw a SYN: NetFlow splits long connections
into several records), a TCP SYN without ACK, or a UDP packet after `udp_idle_s` of silence on the
pair. Starts closer than `merge_s` are one beat (SYN retransmissions, a client opening two sockets).

Regularity is judged on the intervals between beats. With m0 their median, intervals of 0.5-1.5 m0
are the "core" and the period is their median; the jitter is the median absolute deviation from the
period of the core and the short (< 0.5 m0) intervals, over the period. Intervals longer than
1.5 m0 are skipped beats or sleep windows and do not count against the jitter, but at least
`min_on_period` of all intervals must be core ones (random arrivals put about a third there).
Memory is bounded: at most `max_pairs` pairs (least recently active evicted), each with a ring of
`ring` start times -- about `max_pairs` x (8 x `ring` + 250) bytes, 10 MB with the defaults.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Sequence
from itertools import pairwise
from statistics import median
from typing import ClassVar

from watchstander.connectors.events import ACK, NETWORK, SYN, Event

from ...config.detectors import BeaconConfig
from ...models import Finding
from .addresses import DestinationAllowList, NetworkSet
from .base import Detector, Emit

RESCORE_EVERY = 8  # beats between re-estimates of an open finding's period
_NUMBER = (float, int)  # a tuple: `float | int` would build a union object on every call


def periodicity(starts: Sequence[float]) -> tuple[float, float, float, int] | None:
    """(period, jitter, share of intervals on the period, core intervals) of sorted start times."""
    if len(starts) < 3:
        return None
    ivs = [b - a for a, b in pairwise(starts)]
    m0 = median(ivs)
    if not m0 > 0:
        return None
    core = [iv for iv in ivs if 0.5 * m0 <= iv < 1.5 * m0]
    if not core:
        return None
    short = [iv for iv in ivs if iv < 0.5 * m0]
    period = median(core)
    # Short intervals count against the jitter: a steady beacon has almost none.
    jitter = median(abs(iv - period) for iv in core + short) / period
    return period, jitter, len(core) / len(ivs), len(core)


def every(seconds: float) -> str:
    """A period as a person says it: ~0.4 s, ~60 s, ~5 min, ~2.0 h."""
    if seconds < 10:
        return f"~{seconds:.1f} s"
    if seconds < 120:
        return f"~{seconds:.0f} s"
    if seconds < 7200:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


class _Pair:
    __slots__ = ("finding", "last_packet", "n", "starts")

    def __init__(self) -> None:
        self.starts = array("d")
        self.n = 0  # beats ever seen (the ring keeps only the last few)
        self.last_packet = -math.inf
        self.finding: Finding | None = None


class BeaconDetector(Detector):
    """Regular connections from one internal host to one external address and port."""

    id = "beacon"
    kinds = (NETWORK,)
    techniques = ("T1071", "T1573")
    title = "Beaconing"
    confidence = 0.6
    playbook = "block-address-nftables"
    # The network events it needs, as (source inside, destination inside) judged on `internal`:
    # an internal source and an outside destination. The pipeline skips the others, which `feed` ignores anyway.
    network_ends: ClassVar[frozenset[tuple[bool, bool]]] = frozenset({(True, False)})

    def __init__(self, config: BeaconConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.internal = NetworkSet(config.internal_networks)
        self.allow = DestinationAllowList(config.allow, config.allowed_ports)
        self.encrypted = frozenset(config.encrypted_ports)
        self.pairs: OrderedDict[tuple[str, str, int, str], _Pair] = OrderedDict()

    def feed(self, ev: Event) -> None:
        """Count a connection start from an internal host to an external destination."""
        proto = ev.proto
        if proto != "tcp" and proto != "udp":
            return
        # The cheap tests on the record come before the address lookups, which cost the most.
        dport, t = ev.dport, ev.time
        if not isinstance(dport, int) or not isinstance(t, _NUMBER) or not math.isfinite(t):
            return
        attrs = ev.attrs
        flags = ev.flags if isinstance(ev.flags, int) else 0
        flow = isinstance(attrs, dict) and attrs.get("flow") is True
        if flow:
            # A TCP record without SYN continues a connection NetFlow already reported.
            if proto == "tcp" and flags and not flags & SYN:
                return
        elif proto == "tcp" and flags & (SYN | ACK) != SYN:
            return
        src, dst, internal = ev.src, ev.dst, self.internal
        if dst is None or dst in internal or src not in internal or self.allow.allows(dst, dport):
            return
        assert src is not None
        key = (src, dst, dport, proto)
        pair = self._pair(key)
        if proto == "udp" and not flow:
            idle = t - pair.last_packet
            pair.last_packet = max(pair.last_packet, t)
            if idle <= self.config.udp_idle_s:
                return
        if self._beat(pair, float(t)):
            self._score(pair, key, ev)

    def _pair(self, key: tuple[str, str, int, str]) -> _Pair:
        pairs = self.pairs
        pair = pairs.get(key)
        if pair is None:
            if len(pairs) >= self.config.max_pairs:
                pairs.popitem(last=False)
            pair = pairs[key] = _Pair()
        else:
            pairs.move_to_end(key)
        return pair

    def _beat(self, pair: _Pair, t: float) -> bool:
        """Record a start unless it belongs to a beat already counted; True when it is a new beat."""
        starts = pair.starts
        merge = self.config.merge_s
        i = bisect_left(starts, t)
        if (i > 0 and t - starts[i - 1] < merge) or (i < len(starts) and starts[i] - t < merge):
            return False
        if i == 0 and len(starts) >= self.config.ring:
            return False  # older than everything the full ring holds
        starts.insert(i, t)
        if len(starts) > self.config.ring:
            del starts[0]
        pair.n += 1
        return True

    def _score(self, pair: _Pair, key: tuple[str, str, int, str], ev: Event) -> None:
        cfg = self.config
        f = pair.finding
        src, dst, dport, proto = key
        if f is not None:
            f.count = pair.n
            f.counts["connections"] = pair.n
            f.last_seen = max(f.last_seen, ev.time)
            f.title = self._title(src, dst, dport, f.attributes["period_s"], pair.n)
            f.add_evidence(ev.ref)
            if pair.n % RESCORE_EVERY:
                return
        starts = pair.starts
        if len(starts) < cfg.min_connections or starts[-1] - starts[0] < cfg.min_span_s:
            return
        scored = periodicity(starts)
        if scored is None:
            return
        period, jitter, on_period, core = scored
        regular = (core >= cfg.min_connections - 1 and period >= cfg.min_period_s
                   and jitter <= cfg.max_jitter and on_period >= cfg.min_on_period)
        if f is not None:
            if regular:
                f.title = self._title(src, dst, dport, period, pair.n)
                f.attributes.update(period_s=round(period, 1), jitter=round(jitter, 3))
            return
        if not regular:
            return
        techniques = self.techniques if dport in self.encrypted else ("T1071",)
        pair.finding = self.new_finding(
            self._title(src, dst, dport, period, pair.n), "medium",
            {"attacker": dst, "victim": src, "service": f"{proto}/{dport}"}, ev,
            techniques=techniques, first_seen=starts[0],
            period_s=round(period, 1), jitter=round(jitter, 3), on_period_share=round(on_period, 3))
        pair.finding.count = pair.n
        pair.finding.counts["connections"] = pair.n

    @staticmethod
    def _title(src: str, dst: str, dport: int, period: float, n: int) -> str:
        host = f"[{dst}]" if ":" in dst else dst
        return f"Beaconing from {src} to {host}:{dport} every {every(period)} ({n} connections)"
