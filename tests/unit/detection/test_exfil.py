"""Exfiltration by volume from NetFlow-like and Zeek-like flow records, against each host's baseline."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watchstander.agent.config.detectors import ExfilConfig
from watchstander.agent.detection.detectors.exfil import ExfilDetector, threshold, volume
from watchstander.agent.models import Finding
from watchstander.connectors.events import NETWORK, SYN, Event

HOST, DROP = "10.0.0.7", "203.0.113.9"
MB = 1 << 20
T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600


def detect(events: list[Event], **config: Any) -> list[Finding]:
    found: list[Finding] = []
    det = ExfilDetector(ExfilConfig(**config), found.append)
    for ev in events:
        det.feed(ev)
    return found


def flow(t: float, nbytes: int, dst: str = "198.51.100.10", dport: int = 443, src: str = HOST,
         **attrs: Any) -> Event:
    return Event(t, "netflow", NETWORK, src, dst, 50000, dport, "tcp", SYN,
                 attrs={"flow": True, "packets": max(1, nbytes // 1400), "bytes": nbytes, "duration": 5.0, **attrs},
                 ref=f"nf#{t:.0f}")


def baseline(hours: int, per_hour: int = 30 * MB, seed: int = 1) -> list[Event]:
    """A workday host: a dozen flows an hour, about `per_hour` bytes out, varying +-50 %."""
    rng = random.Random(seed)
    out = []
    for h in range(hours):
        for k in range(12):
            out.append(flow(T0 + h * 3600 + k * 300, int(per_hour / 12 * rng.uniform(0.5, 1.5))))
    return out


def test_an_upload_far_above_the_hosts_baseline_is_reported() -> None:
    events = baseline(24) + [flow(T0 + 24 * 3600 + 60 + i, 50 * MB, dst=DROP, dport=22) for i in range(12)]
    (f,) = detect(events)
    assert f.entities == {"victim": HOST, "attacker": DROP}
    assert f.techniques == ("T1048", "T1041")
    assert f.title.startswith(f"Unusual outbound volume from {HOST}: ")
    assert f.title.endswith(f"mostly to {DROP}:22")
    assert f.counts["bytes_out"] >= 100 * MB
    assert 20 * MB < f.counts["baseline_bytes"] < 40 * MB


def test_zeek_orig_bytes_and_inbound_resp_bytes() -> None:
    history = baseline(10)
    zeek_out = [flow(T0 + 10 * 3600 + i, 1, dst=DROP, orig_bytes=80 * MB, resp_bytes=1000) for i in range(4)]
    (f,) = detect(history + zeek_out)
    assert f.counts["bytes_out"] == 320 * MB  # orig_bytes, not the flow's total
    # an external client downloading a lot from an internal server: resp_bytes is what left the site
    inbound = [Event(T0 + 10 * 3600 + i, "zeek", NETWORK, DROP, HOST, 50000, 443, "tcp", SYN,
                     attrs={"flow": True, "orig_bytes": 500, "resp_bytes": 90 * MB}) for i in range(4)]
    (g,) = detect(history + inbound)
    assert g.entities == {"victim": HOST, "attacker": DROP}


def test_nothing_is_reported_during_warm_up() -> None:
    events = baseline(3) + [flow(T0 + 3 * 3600 + i, 200 * MB, dst=DROP) for i in range(5)]
    assert detect(events) == []


def test_benign_controls_steady_backups_small_spikes_and_allow_list() -> None:
    nightly = []
    for day in range(10):  # 2 GB every night, every night: that is this host's baseline
        for h in range(24):
            size = 2048 * MB if h == 2 else 20 * MB
            nightly.append(flow(T0 + (day * 24 + h) * 3600, size, dst="192.0.2.50", dport=873))
    assert detect(nightly, history=240) == []
    quiet_host = baseline(24, per_hour=1 * MB) + [flow(T0 + 24 * 3600 + 5, 50 * MB, dst=DROP)]
    assert detect(quiet_host) == []  # 50x its baseline but under min_bytes
    spike = baseline(24) + [flow(T0 + 24 * 3600 + i, 100 * MB, dst="192.0.2.50", dport=873) for i in range(5)]
    assert detect(spike) != []
    assert detect(spike, allow=["192.0.2.50:873"]) == []
    assert detect(spike, allow=["192.0.2.0/24"]) == []


def test_packets_and_internal_traffic_feed_nothing() -> None:
    pkts = [Event(T0 + i, "pcap", NETWORK, HOST, DROP, 1, 443, "tcp", SYN) for i in range(1000)]
    internal = baseline(24) + [flow(T0 + 24 * 3600 + i, 500 * MB, dst="10.9.9.9") for i in range(5)]
    assert detect(pkts) == [] and detect(internal) == []


def test_threshold_and_wording() -> None:
    from array import array
    cfg = ExfilConfig(min_bytes=10)
    assert threshold(array("d"), cfg) == 10
    assert threshold(array("d", [100.0] * 10), cfg) == 1000.0
    assert volume(812 * MB) == "812 MB" and volume(2.1 * 1024 * MB) == "2.1 GB" and volume(5) == "5 B"


def test_hosts_are_bounded() -> None:
    det = ExfilDetector(ExfilConfig(max_hosts=100), lambda f: None)
    for i in range(3000):
        det.feed(flow(T0 + i, 1000, src=f"10.1.{i // 250}.{i % 250}"))
    assert len(det.hosts) == 100


hostile = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.integers(), max_size=2), st.just(True))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**11)),
    st.sampled_from([HOST, None, "x", "fd00::5", DROP]),
    st.sampled_from([DROP, None, "", HOST, "2001:db8::1"]),
    st.one_of(st.none(), st.integers(-1, 70000)),
    st.one_of(st.none(), st.dictionaries(st.sampled_from(["flow", "bytes", "orig_bytes", "resp_bytes"]),
                                         hostile)),
), max_size=60))
def test_hostile_events_never_crash(items: list[Any]) -> None:
    events = [Event(t, "h", NETWORK, s, d, 1, dp, "tcp", attrs=a)  # type: ignore[arg-type]
              for t, s, d, dp, a in items]
    detect(events, window_s=10, warmup_windows=1, min_bytes=0, history=3, max_hosts=100)
