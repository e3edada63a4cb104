"""The flow fast paths change no finding: beacon, exfil and lateral against their former `feed`, and the
pipeline's routing of network events by their ends against calling every detector.

The reference `feed` methods below are the detectors' code before the fast paths (tree 92f9e13), kept
verbatim so that hypothesis can compare the two on hostile and ordinary event streams.
"""

from __future__ import annotations

import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watchstander.agent.config.detectors import BeaconConfig, DetectorsConfig, ExfilConfig, LateralConfig
from watchstander.agent.detection.detectors.beacon import BeaconDetector
from watchstander.agent.detection.detectors.exfil import ExfilDetector, _count
from watchstander.agent.detection.detectors.lateral import (
    ADMIN_PORTS,
    TARGET_CAP,
    InMemory,
    LateralMovementDetector,
)
from watchstander.agent.detection.pipeline import Pipeline, network_routes
from watchstander.agent.models import Finding
from watchstander.connectors.events import ACK, NETWORK, SYN, Event

T0 = 1_700_000_000.0
ADDRESSES = ("10.0.0.1", "10.0.0.2", "192.168.1.5", "172.16.0.9", "203.0.113.5", "198.51.100.7",
             "2001:db8::1", "fd00::2", "bogus", "")
PORTS = (22, 445, 139, 3389, 5985, 5986, 443, 80, 53, 123, 8080, 0)
PAIRS = (("10.0.0.1", "203.0.113.5", 443, "tcp"), ("192.168.1.5", "198.51.100.7", 8080, "udp"),
         ("203.0.113.5", "10.0.0.2", 80, "tcp"), ("10.0.0.1", "10.0.0.2", 3389, "tcp"),
         ("2001:db8::1", "fd00::2", 22, "tcp"), ("fd00::2", "2001:db8::1", 443, "tcp"))


class RefBeacon(BeaconDetector):
    """BeaconDetector with its former feed."""

    def feed(self, ev: Event) -> None:
        proto = ev.proto
        if proto != "tcp" and proto != "udp":
            return
        src, dst, dport, t = ev.src, ev.dst, ev.dport, ev.time
        if not isinstance(dport, int) or not isinstance(t, float | int) or not math.isfinite(t):
            return
        internal = self.internal
        if src not in internal or dst in internal or dst is None or self.allow.allows(dst, dport):
            return
        attrs = ev.attrs
        flags = ev.flags if isinstance(ev.flags, int) else 0
        flow = isinstance(attrs, dict) and attrs.get("flow") is True
        if flow:
            if proto == "tcp" and flags and not flags & SYN:
                return
        elif proto == "tcp" and flags & (SYN | ACK) != SYN:
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


class RefExfil(ExfilDetector):
    """ExfilDetector with its former feed."""

    def feed(self, ev: Event) -> None:
        attrs = ev.attrs
        if not isinstance(attrs, dict) or attrs.get("flow") is not True:
            return
        t = ev.time
        if not isinstance(t, float | int) or not math.isfinite(t):
            return
        src, dst, internal = ev.src, ev.dst, self.internal
        src_in, dst_in = src in internal, dst in internal
        if src_in and not dst_in and isinstance(dst, str):
            out = _count(attrs.get("orig_bytes"))
            if out is None:
                out = _count(attrs.get("bytes"))
            host, remote, port = src, dst, ev.dport
        elif dst_in and not src_in and isinstance(src, str):
            out = _count(attrs.get("resp_bytes"))
            host, remote, port = dst, src, ev.sport
        else:
            return
        if not out or not isinstance(host, str) or self.allow.allows(remote, port):
            return
        st_ = self._host(host, int(t // self.config.window_s))
        st_.current += out
        key = (remote, port if isinstance(port, int) else 0)
        if key in st_.dests or len(st_.dests) < 8:
            st_.dests[key] = st_.dests.get(key, 0) + out
        if st_.current >= st_.limit:
            self._report(host, st_, ev)


class RefLateral(LateralMovementDetector):
    """LateralMovementDetector with its former feed."""

    def feed(self, ev: Event) -> None:
        t = ev.time
        if not isinstance(t, float | int) or not math.isfinite(t):
            return
        learning = self.observed < self.config.learning_s
        if learning:
            self._observe(float(t))
        admin = ADMIN_PORTS.get(ev.dport) if isinstance(ev.dport, int) else None
        if admin is None or ev.proto != "tcp":
            return
        attrs = ev.attrs
        flags = ev.flags if isinstance(ev.flags, int) else 0
        if isinstance(attrs, dict) and attrs.get("flow") is True:
            if flags and not flags & SYN:
                return
        elif flags & (SYN | ACK) != SYN:
            return
        src, dst = ev.src, ev.dst
        internal = self.internal
        if src not in internal or dst not in internal or src == dst or src in self.admins:
            return
        assert src is not None and dst is not None
        service, technique = admin
        key = (src, service)
        if key in self.known:
            self._update(key, dst, ev)
            return
        if len(self.known) < self.config.max_pairs:
            self.known.add(key)
        self.memory.save_pair(src, service, float(t))
        if learning:
            return
        st_ = self.new.get(key, t)
        st_.add(dst, TARGET_CAP)
        f = st_.open(self, f"New {service.upper()} use from {src} to {dst}: {src} never used {service.upper()} "
                     "before", "medium", {"attacker": src, "victim": dst, "service": service}, ev,
                     techniques=(technique,), learned_s=round(self.observed))
        st_.update(ev, "targets")
        f.counts["connections"] = st_.n


def _attrs(rnd: random.Random) -> dict[str, Any] | None:
    shape = rnd.choice(("none", "flow", "flow", "flow", "packet", "odd"))
    if shape == "none":
        return None
    if shape == "packet":
        return {"flow": False}
    if shape == "odd":
        return {"flow": "yes", "bytes": -1}
    counts = (0, 1, 700, 40_000, 2_000_000, 1 << 51, -5, True, 2.5, None)
    return {"flow": True, "bytes": rnd.choice(counts), "orig_bytes": rnd.choice(counts),
            "resp_bytes": rnd.choice(counts), "packets": 3}


def stream(seed: int, n: int) -> list[Event]:
    """Network events between a few inside and outside hosts, mostly in time order, some hostile."""
    rnd = random.Random(seed)
    steps = (0.0, 0.5, 30.0, 30.0, 30.0, 31.0, 29.0, 60.0, 700.0, 5000.0, -40.0)
    t = T0
    out: list[Event] = []
    for i in range(n):
        t += rnd.choice(steps)
        when: float = rnd.choice((math.nan, math.inf, -math.inf, 3)) if rnd.random() < 0.02 else t
        if rnd.random() < 0.4:  # a few pairs again and again: beacons, volumes and admin sessions to find
            src, dst, dport, proto = rnd.choice(PAIRS)
            flow = {"flow": True, "bytes": rnd.choice((500, 90_000)), "orig_bytes": rnd.choice((None, 2_000_000)),
                    "resp_bytes": 3_000_000, "packets": 3}
            out.append(Event(when, "test", NETWORK, src, dst, 40000, dport, proto, SYN, attrs=flow, ref=f"e{i}"))
            continue
        out.append(Event(when, "test", NETWORK, rnd.choice(ADDRESSES + (None,)), rnd.choice(ADDRESSES + (None,)),
                         rnd.choice(PORTS + (40000,)), rnd.choice(PORTS + (None,)),
                         rnd.choice(("tcp", "tcp", "udp", "icmp", None)),
                         rnd.choice((SYN, SYN | ACK, ACK, 0, 0x1B, 0x3F)), attrs=_attrs(rnd), ref=f"e{i}"))
    return out


# Hypothesis picks the seed and the length; the events come from a seeded generator (many per example,
# cheaply: drawing every field through hypothesis made each example a hundred times slower).
streams = st.builds(stream, st.integers(0, 2**32 - 1), st.integers(1, 400))


BEACON = BeaconConfig(min_connections=4, min_span_s=1.0, min_period_s=0.1, max_jitter=1.0, min_on_period=0.1,
                      merge_s=0.0, max_pairs=100)
EXFIL = ExfilConfig(window_s=60.0, history=3, warmup_windows=1, min_bytes=0, factor=1.01, mad_factor=0.1,
                    peak_factor=0.0, max_hosts=100)


def lateral_config(learning_s: float, admins: tuple[str, ...]) -> LateralConfig:
    return LateralConfig(learning_s=learning_s, learning_gap_s=300.0, admin_hosts=admins, window_s=600.0, max_pairs=100)


def _feed(det: Any, events: list[Event]) -> None:
    for ev in events:
        det.feed(ev)


@settings(max_examples=100, deadline=None)
@given(streams)
def test_beacon_fast_path_finds_the_same(events: list[Event]) -> None:
    """Same findings and the same pairs, in the same order."""
    got: list[Finding] = []
    want: list[Finding] = []
    fast, ref = BeaconDetector(BEACON, got.append), RefBeacon(BEACON, want.append)
    _feed(fast, events)
    _feed(ref, events)
    assert got == want
    assert list(fast.pairs) == list(ref.pairs)
    assert [list(p.starts) for p in fast.pairs.values()] == [list(p.starts) for p in ref.pairs.values()]


@settings(max_examples=100, deadline=None)
@given(streams)
def test_exfil_fast_path_finds_the_same(events: list[Event]) -> None:
    """Same findings and the same host windows."""
    got: list[Finding] = []
    want: list[Finding] = []
    fast, ref = ExfilDetector(EXFIL, got.append), RefExfil(EXFIL, want.append)
    _feed(fast, events)
    _feed(ref, events)
    assert got == want
    assert [(h, s.current, list(s.history)) for h, s in fast.hosts.items()] == \
        [(h, s.current, list(s.history)) for h, s in ref.hosts.items()]


@settings(max_examples=150, deadline=None)
@given(streams, st.sampled_from((0.0, 120.0, 900.0, 1e9)), st.sampled_from(((), ("10.0.0.2",))))
def test_lateral_fast_path_finds_the_same(events: list[Event], learning_s: float, admins: tuple[str, ...]) -> None:
    """Same findings, learned pairs, observed learning time and saved progress."""
    got: list[Finding] = []
    want: list[Finding] = []
    cfg = lateral_config(learning_s, admins)
    mem_fast, mem_ref = InMemory(), InMemory()
    fast = LateralMovementDetector(cfg, got.append, mem_fast)
    ref = RefLateral(cfg, want.append, mem_ref)
    _feed(fast, events)
    _feed(ref, events)
    for f in got:  # added since the reference was copied: the hosts reached, which the reference only counted
        targets = f.attributes.pop("targets")
        assert f.entities["victim"] in targets and len(targets) == min(f.counts["targets"], 50)
    for f in want:  # the reference shares the new `_update`, which names them once there are several
        f.attributes.pop("targets", None)
    assert got == want
    assert (fast.known, fast.observed, fast.saved) == (ref.known, ref.observed, ref.saved)
    assert fast.last_time == ref.last_time
    assert (mem_fast.pairs, mem_fast.observed_s) == (mem_ref.pairs, mem_ref.observed_s)


def pipeline_config(learning_s: float) -> DetectorsConfig:
    return DetectorsConfig(beacon=BEACON, exfil=EXFIL, lateral=lateral_config(learning_s, ()))


@settings(max_examples=100, deadline=None)
@given(streams, st.sampled_from((0.0, 600.0)))
def test_routing_by_ends_finds_the_same(events: list[Event], learning_s: float) -> None:
    """A pipeline that skips detectors by an event's ends opens exactly the findings of one that calls all."""
    routed = Pipeline(pipeline_config(learning_s))
    every = Pipeline(pipeline_config(learning_s), route_network=False)
    assert routed.routes is not None and every.routes is None
    assert routed.feed_all(events) == every.feed_all(events) == len(events)
    assert routed.findings == every.findings
    assert routed.failures == every.failures


def test_routes_skip_only_the_declared_detectors() -> None:
    """Beacon only for inside to outside, exfil only across the boundary; every other detector always."""
    pipeline = Pipeline(DetectorsConfig())
    routed = network_routes(pipeline.detectors)
    assert routed is not None
    _, routes = routed
    every = [name for name, _ in pipeline.handlers[NETWORK]]
    names = {(s, d): [name for name, _ in routes[s][d]] for s in (False, True) for d in (False, True)}
    others = [n for n in every if n not in ("beacon", "exfil")]
    assert names[(True, True)] == others and names[(False, False)] == others
    assert names[(True, False)] == every
    assert names[(False, True)] == [n for n in every if n != "beacon"]


def test_other_internal_networks_are_not_routed() -> None:
    """A detector whose address space differs from the first declaring one's is called for every event."""
    cfg = DetectorsConfig(exfil=ExfilConfig(internal_networks=("10.0.0.0/8",)))
    routed = network_routes(Pipeline(cfg).detectors)
    assert routed is not None
    _, routes = routed
    assert all("exfil" in [n for n, _ in routes[s][d]] for s in (False, True) for d in (False, True))
    assert "beacon" not in [n for n, _ in routes[True][True]]


def test_a_failing_detector_is_isolated_on_both_paths() -> None:
    """The untimed loop and the sampled, timed one both log the failure and go on to the next detector."""
    pipeline = Pipeline(DetectorsConfig())
    seen: list[str | None] = []

    def broken(ev: Event) -> None:
        raise RuntimeError("boom")

    for route in (pipeline.routes[1][s][d] for s in (0, 1) for d in (0, 1)) if pipeline.routes else ():
        route.insert(0, ("broken", broken))
        route.append(("witness", lambda ev: seen.append(ev.ref)))
    events = [Event(T0 + i, "test", NETWORK, "10.0.0.1", "203.0.113.5", 40000, 443, "tcp", ACK, ref=f"e{i}")
              for i in range(130)]
    assert pipeline.feed_all(events) == 130
    assert pipeline.failures["broken"] == 130
    assert seen == [ev.ref for ev in events]
    assert set(pipeline.detector_seconds) >= {"broken", "witness", "beacon"}  # two sampled events were timed
