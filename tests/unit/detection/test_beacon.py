"""Beaconing from packets, NetFlow-like and Zeek-like flow records; jitter, sleeps, benign controls."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watchstander.agent.config.detectors import BeaconConfig
from watchstander.agent.detection.detectors.beacon import BeaconDetector, every, periodicity
from watchstander.agent.models import Finding
from watchstander.connectors.events import ACK, NETWORK, PSH, SYN, Event

HOST, C2 = "10.0.0.7", "203.0.113.5"


def detect(events: list[Event], **config: Any) -> list[Finding]:
    found: list[Finding] = []
    det = BeaconDetector(BeaconConfig(**config), found.append)
    for ev in events:
        det.feed(ev)
    return found


def jittered(n: int, period: float, jitter: float, seed: int = 7, start: float = 1_700_000_000.0) -> list[float]:
    """n start times, each interval period x (1 +- jitter) uniformly (Cobalt Strike style)."""
    rng = random.Random(seed)
    times, t = [], start
    for _ in range(n):
        times.append(t)
        t += period * (1 + rng.uniform(-jitter, jitter))
    return times


def tcp_packets(times: list[float], dst: str = C2, dport: int = 443) -> list[Event]:
    """Each connection as the packets a capture shows: SYN, a retransmitted SYN, SYN-ACK back, data."""
    out = []
    for i, t in enumerate(times):
        sport = 40000 + i
        out += [Event(t, "pcap", NETWORK, HOST, dst, sport, dport, "tcp", SYN, ref=f"b#{i}"),
                Event(t + 1.0, "pcap", NETWORK, HOST, dst, sport, dport, "tcp", SYN),
                Event(t + 1.05, "pcap", NETWORK, dst, HOST, dport, sport, "tcp", SYN | ACK),
                Event(t + 1.1, "pcap", NETWORK, HOST, dst, sport, dport, "tcp", ACK | PSH)]
    return out


def flows(times: list[float], dport: int = 443, proto: str = "tcp", zeek: bool = False) -> list[Event]:
    extra = {"orig_bytes": 300, "resp_bytes": 1200} if zeek else {}
    return [Event(t, "flow", NETWORK, HOST, C2, 40000 + i, dport, proto, SYN | ACK | PSH | 0x01 if proto == "tcp" else 0,
                  attrs={"flow": True, "packets": 8, "bytes": 1500, "duration": 0.4, **extra})
            for i, t in enumerate(times)]


def test_beacon_every_minute_with_20_percent_jitter_from_packets() -> None:
    (f,) = detect(tcp_packets(jittered(48, 60.0, 0.2)))
    assert f.entities == {"attacker": C2, "victim": HOST, "service": "tcp/443"}
    assert f.techniques == ("T1071", "T1573")
    assert f.title == f"Beaconing from {HOST} to {C2}:443 every {every(f.attributes['period_s'])} (48 connections)"
    assert 54 <= f.attributes["period_s"] <= 66
    assert f.count == 48 and 0.05 < f.attributes["jitter"] <= 0.15
    assert f.evidence and f.evidence[0].startswith("b#")


def test_beacon_from_netflow_and_zeek_records_on_a_plain_port() -> None:
    times = jittered(30, 300.0, 0.1)
    (a,) = detect(flows(times, dport=8080))
    (b,) = detect(flows(times, dport=8080, zeek=True))
    assert a.techniques == b.techniques == ("T1071",)
    assert "every ~5 min" in a.title and a.entities == b.entities


def test_netflow_continuation_records_of_one_long_connection_are_not_beats() -> None:
    long = [Event(1_700_000_000.0 + 60 * i, "flow", NETWORK, HOST, C2, 40000, 443, "tcp", ACK | PSH,
                  attrs={"flow": True, "packets": 100, "bytes": 9000, "duration": 60.0}) for i in range(60)]
    assert detect(long) == []


def test_udp_beacon_sessions_from_packets() -> None:
    events = []
    for i, t in enumerate(jittered(20, 30.0, 0.15)):
        events += [Event(t + k * 0.2, "pcap", NETWORK, HOST, C2, 5000 + i, 8999, "udp") for k in range(3)]
    (f,) = detect(events)
    assert f.entities["service"] == "udp/8999" and f.count == 20


def test_sleep_windows_of_whole_periods_do_not_hide_a_beacon() -> None:
    times = jittered(60, 60.0, 0.2)
    # the implant sleeps: drop beats 10-19 and 30-44 (gaps of 11 and 16 periods)
    kept = [t for i, t in enumerate(times) if not (10 <= i < 20 or 30 <= i < 45)]
    (f,) = detect(tcp_packets(kept))
    assert 54 <= f.attributes["period_s"] <= 66 and f.count == len(kept)


def test_random_browsing_times_are_not_periodic() -> None:
    rng = random.Random(3)
    for seed in range(200):
        rng.seed(seed)
        t, times = 1_700_000_000.0, []
        for _ in range(80):
            times.append(t)
            t += rng.expovariate(1 / 60)
        assert detect(tcp_packets(times)) == [], seed


def test_benign_controls_ntp_allow_listed_polls_and_internal_pairs() -> None:
    times = jittered(48, 64.0, 0.02)
    ntp = [Event(t, "pcap", NETWORK, HOST, "192.0.2.123", 123, 123, "udp") for t in times]
    assert detect(ntp) == []
    assert detect(tcp_packets(times, dst="198.51.100.20")) != []
    assert detect(tcp_packets(times, dst="198.51.100.20"), allow=["198.51.100.0/24"]) == []
    assert detect(tcp_packets(times, dst="198.51.100.20"), allow=["198.51.100.20:443"]) == []
    assert detect(tcp_packets(times, dst="198.51.100.20"), allow=["*:443"]) == []
    assert detect(tcp_packets(times, dst="198.51.100.20"), allow=["198.51.100.20:80"]) != []
    assert detect(tcp_packets(times, dst="10.1.1.1")) == []  # internal to internal


def test_too_short_or_too_few_is_quiet() -> None:
    assert detect(tcp_packets(jittered(11, 60.0, 0.0))) == []
    assert detect(tcp_packets(jittered(40, 2.5, 0.0))) == []  # faster than min_period_s


def test_periodicity_and_wording() -> None:
    assert periodicity([0.0, 10.0]) is None
    period, jitter, on_period, core = periodicity([0.0, 10.0, 20.0, 30.0, 50.0]) or (0, 0, 0, 0)
    assert (period, jitter, on_period, core) == (10.0, 0.0, 0.75, 3)
    assert every(60) == "~60 s" and every(300) == "~5 min" and every(7200) == "~2.0 h"


def test_pairs_are_bounded_least_recent_first() -> None:
    det = BeaconDetector(BeaconConfig(max_pairs=100), lambda f: None)
    for i in range(5000):
        det.feed(Event(1_700_000_000.0 + i, "p", NETWORK, HOST, f"198.18.{i // 250}.{i % 250}", 1, 443, "tcp", SYN))
    assert len(det.pairs) == 100
    assert max(len(p.starts) for p in det.pairs.values()) <= det.config.ring


hostile = st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=10), st.binary(max_size=10),
                    st.lists(st.integers(), max_size=2), st.booleans())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**12)),
    st.sampled_from([HOST, "10.0.0.8", None, "x", "fd00::1"]),
    st.sampled_from([C2, None, "", "::1", "2001:db8::1", "10.0.0.9"]),
    st.one_of(st.none(), st.integers(-1, 70000)),
    st.sampled_from(["tcp", "udp", "icmp", None]),
    st.one_of(st.integers(-5, 300), st.none()),
    st.one_of(st.none(), st.dictionaries(st.sampled_from(["flow", "bytes", "packets", "orig_bytes"]), hostile)),
), max_size=80))
def test_hostile_events_never_crash(items: list[Any]) -> None:
    events = [Event(t, "h", NETWORK, s, d, 1, dp, p, fl, attrs=a)  # type: ignore[arg-type]
              for t, s, d, dp, p, fl, a in items]
    detect(events, min_connections=4, min_span_s=1, min_period_s=0.001, max_pairs=100)
