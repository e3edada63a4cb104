"""Scan detectors on hand-made packets and flow records: every technique, the benign shapes that look
like scans, the site's scanner allow-list, bounded memory, and hostile input."""

from __future__ import annotations

import logging
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchstander.agent.config.detectors import DetectorsConfig, PortScanConfig
from watchstander.agent.config.model import AgentConfig
from watchstander.agent.detection.detectors.portscan import PortScanDetector
from watchstander.agent.detection.detectors.scan_distributed import DistributedScanDetector
from watchstander.agent.detection.detectors.sweep import SweepDetector
from watchstander.agent.detection.pipeline import Pipeline
from watchstander.agent.models import Finding
from watchstander.connectors.events import ACK, FIN, KINDS, NETWORK, PSH, SYN, Event

URG = 0x20
SCAN_DETECTORS = ("portscan", "sweep", "scan_distributed")
ATTACKER, VICTIM = "10.0.0.9", "10.0.0.5"


def run(events: list[Event], **overrides: Any) -> list[Finding]:
    """Scan findings from the default (or overridden) detectors."""
    pipeline = Pipeline(DetectorsConfig.model_validate(overrides))
    pipeline.feed_all(events)
    assert not pipeline.failures, pipeline.failures
    return [f for f in pipeline.findings if f.detector in SCAN_DETECTORS]


def pkt(t: float, src: str, dst: str, sport: int | None, dport: int | None, proto: str = "tcp", flags: int = 0,
        attrs: dict[str, Any] | None = None, size: int = 0) -> Event:
    """One packet's event (`size` is for call compatibility with `flow`: a packet event has none)."""
    return Event(t, "test", NETWORK, src, dst, sport, dport, proto, flags, attrs=attrs, ref=f"t#{t}")


def flow(t: float, src: str, dst: str, sport: int, dport: int, proto: str = "tcp", flags: int = 0,
         packets: int = 1, size: int = 40) -> Event:
    return pkt(t, src, dst, sport, dport, proto, flags,
               {"flow": True, "packets": packets, "bytes": size, "duration": 0.0})


TCP_FLAGS = [("tcp-syn", SYN), ("tcp-fin", FIN), ("tcp-null", 0), ("tcp-xmas", FIN | PSH | URG),
             ("tcp-ack", ACK), ("tcp-maimon", FIN | ACK)]


@pytest.mark.parametrize(("technique", "flags"), TCP_FLAGS)
@pytest.mark.parametrize("as_flow", [False, True], ids=["packets", "flows"])
def test_tcp_flag_scans(technique: str, flags: int, as_flow: bool) -> None:
    make = flow if as_flow else pkt
    probes = [make(i * 0.01, ATTACKER, VICTIM, 40000, port, "tcp", flags) for i, port in enumerate(range(1, 41))]
    (f,) = run(probes)
    assert f.attributes["technique"] == technique
    assert f.entities == {"attacker": ATTACKER, "victim": VICTIM}
    assert f.techniques == ("T1046",)
    assert f.title.endswith(f"port scan of {VICTIM} from {ATTACKER} (40 ports)")
    assert run(probes[:29]) == []


def test_scan_from_the_internet_is_reconnaissance_too() -> None:
    (f,) = run([pkt(i * 0.01, "45.33.32.156", VICTIM, 40000, p, "tcp", SYN) for i, p in enumerate(range(1, 41))])
    assert f.techniques == ("T1595.001", "T1046")


@pytest.mark.parametrize("as_flow", [False, True], ids=["packets", "flows"])
def test_udp_scan_counts_unanswered_ports(as_flow: bool) -> None:
    make = flow if as_flow else pkt
    probes = [make(i * 0.01, ATTACKER, VICTIM, 45000, port, "udp", size=28) for i, port in enumerate(range(1, 31))]
    answers = [make(i * 0.01 + 0.001, VICTIM, ATTACKER, port, 45000, "udp", size=76)
               for i, port in enumerate(range(1, 12))]
    (f,) = run(probes)
    assert f.title == f"UDP port scan of {VICTIM} from {ATTACKER} (30 ports)"
    assert f.attributes["technique"] == "udp"
    # Eleven ports answered: nineteen unanswered ports are below the threshold of 20.
    assert run(sorted(probes + answers, key=lambda e: e.time)) == []


def test_udp_port_unreachables_alone_are_evidence() -> None:
    events = [pkt(i * 0.01, VICTIM, ATTACKER, 3, 3, "icmp",
                  attrs={"inner_proto": 17, "inner_src": ATTACKER, "inner_dst": VICTIM, "inner_sport": 5,
                         "inner_dport": port}) for i, port in enumerate(range(1000, 1025))]
    (f,) = run(events)
    assert (f.entities["attacker"], f.entities["victim"], f.attributes["technique"]) == (ATTACKER, VICTIM, "udp")


def test_sctp_init_and_ip_protocol_scans() -> None:
    inits = [pkt(i * 0.01, ATTACKER, VICTIM, 5000, p, "sctp", attrs={"chunk": 1}) for i, p in enumerate(range(1, 41))]
    (f,) = run(inits)
    assert f.attributes["technique"] == "sctp-init"
    assert run([pkt(i * 0.01, ATTACKER, VICTIM, 5000, p, "sctp", attrs={"chunk": 0}) for i, p in enumerate(range(1, 41))]) == []
    protocols = [pkt(i * 0.01, ATTACKER, VICTIM, None, None, str(p)) for i, p in enumerate(range(20, 30))]
    (f,) = run(protocols)
    assert f.title == f"IP protocol scan of {VICTIM} from {ATTACKER} (10 protocols)"
    flows = [flow(i * 0.01, ATTACKER, VICTIM, 0, 0, str(p)) for i, p in enumerate(range(20, 30))]
    assert [f.attributes["technique"] for f in run(flows)] == ["ip-protocol"]


@pytest.mark.parametrize("as_flow", [False, True], ids=["packets", "flows"])
def test_horizontal_udp_scan_and_answered_polling(as_flow: bool) -> None:
    make = flow if as_flow else pkt
    scan = [make(i * 0.01, ATTACKER, f"10.0.3.{i + 1}", 45000, 161, "udp", size=60) for i in range(70)]
    (f,) = run(scan)
    assert f.title == f"Horizontal UDP scan of port 161 across 10.0.3.0/25 from {ATTACKER} (70 hosts)"
    assert f.entities == {"attacker": ATTACKER, "victim_port": "161"}
    polling = []
    for rnd in range(3):
        for i in range(150):
            t = rnd * 60 + i * 0.01
            polling += [make(t, "10.0.0.2", f"10.0.3.{i + 1}", 45000, 161, "udp", size=60),
                        make(t + 0.004, f"10.0.3.{i + 1}", "10.0.0.2", 161, 45000, "udp", size=90)]
    assert run(polling) == []


def test_flow_shapes_that_are_not_probes() -> None:
    quiet = []
    for i in range(100):
        # mid-connection ACK-only flows (an active timeout cut them), and NULL-flag flows that carry data
        quiet.append(flow(i, "10.0.0.80", "10.0.0.20", 80, 40000 + i, "tcp", ACK, packets=400, size=500_000))
        quiet.append(flow(i, "10.0.0.20", "10.0.0.81", 40000 + i, 1 + i, "tcp", 0, packets=2, size=3000))
        # a busy resolver: queries to many servers (answered), answers to clients' ephemeral ports
        quiet.append(flow(i, "10.0.0.53", f"192.0.2.{i + 1}", 30000 + i, 53, "udp", size=70))
        quiet.append(flow(i + 0.01, f"192.0.2.{i + 1}", "10.0.0.53", 53, 30000 + i, "udp", size=200))
        quiet.append(flow(i, "10.0.0.53", "10.0.0.20", 53, 20000 + i, "udp", size=120))
        # NTP: a server answering many clients, and a large UDP transfer that is no probe
        quiet.append(flow(i, "10.0.0.123", f"10.0.4.{i + 1}", 123, 123, "udp", size=76))
        quiet.append(flow(i, "10.0.0.30", "10.0.0.31", 50000, 2000 + i, "udp", packets=40, size=40_000))
        # a UDP traceroute walks 33434-33534 on one host
        quiet.append(flow(i, "10.0.0.20", "198.51.100.200", 51000, 33434 + i, "udp", size=60))
    assert run(sorted(quiet, key=lambda e: e.time)) == []


def test_connections_closing_are_not_ack_or_maimon_scans() -> None:
    events = []
    for i in range(100):
        sp, t = 42000 + i, i * 1.0
        events += [pkt(t, "10.0.0.20", "10.0.0.80", sp, 80, "tcp", SYN),
                   pkt(t + 0.001, "10.0.0.80", "10.0.0.20", 80, sp, "tcp", SYN | ACK),
                   pkt(t + 0.002, "10.0.0.20", "10.0.0.80", sp, 80, "tcp", ACK),
                   pkt(t + 0.003, "10.0.0.80", "10.0.0.20", 80, sp, "tcp", ACK),
                   pkt(t + 0.004, "10.0.0.80", "10.0.0.20", 80, sp, "tcp", FIN | ACK),
                   pkt(t + 0.005, "10.0.0.20", "10.0.0.80", sp, 80, "tcp", FIN | ACK),
                   pkt(t + 0.006, "10.0.0.80", "10.0.0.20", 80, sp, "tcp", ACK)]
    # connections already open when watching began: only their last packets are seen
    for i in range(100):
        sp, t = 50000 + i, 200 + i * 1.0
        events += [pkt(t, "10.0.0.81", "10.0.0.21", 443, sp, "tcp", ACK),
                   pkt(t + 0.001, "10.0.0.81", "10.0.0.21", 443, sp, "tcp", PSH | ACK),
                   pkt(t + 0.002, "10.0.0.81", "10.0.0.21", 443, sp, "tcp", FIN | ACK),
                   pkt(t + 0.003, "10.0.0.81", "10.0.0.21", 443, sp, "tcp", ACK)]
    assert run(events) == []


def test_distributed_scan_rule() -> None:
    sources = [f"198.51.100.{i}" for i in range(1, 11)]
    probes = [pkt(i * 1.0, sources[i % 10], VICTIM, 40000 + i, 1000 + i, "tcp", SYN) for i in range(60)]
    (f,) = run(probes)
    assert f.detector == "scan_distributed" and f.entities == {"victim": VICTIM}
    assert f.counts == {"distinct_ports": 60, "distinct_sources": 10} or f.counts["distinct_ports"] == 60
    assert f.title == f"Distributed TCP SYN port scan of {VICTIM} from 10 sources (60 ports)"
    # Four sources are too few; and ports that answered (a passive FTP server) are no evidence.
    assert run([p for p in probes if p.src in sources[:4]]) == []
    answers = [pkt(p.time + 0.001, VICTIM, p.src or "", p.dport, p.sport, "tcp", SYN | ACK) for p in probes]
    assert run(sorted(probes + answers, key=lambda e: e.time)) == []


def test_low_and_slow_scan_and_its_limits() -> None:
    probes = [pkt(i * 60.0, ATTACKER, VICTIM, 40000 + i, 1 + i, "tcp", SYN) for i in range(60)]
    (f,) = run(probes)
    assert f.attributes["shape"] == "low-and-slow"
    assert f.title.startswith(f"Low-and-slow TCP SYN port scan of {VICTIM} from {ATTACKER} (60 ports over 1.0 h)")
    # A monitoring system checking the same services every minute: answered, so quiet.
    checks = []
    for i in range(60):
        checks += [pkt(i * 60.0, "10.0.0.7", VICTIM, 40000 + i, 1 + i % 30, "tcp", SYN),
                   pkt(i * 60.0 + 0.001, VICTIM, "10.0.0.7", 1 + i % 30, 40000 + i, "tcp", SYN | ACK)]
    assert run(checks) == []
    # Slower than one probe per five minutes on average is beyond the default window.
    assert run([pkt(i * 400.0, ATTACKER, VICTIM, 40000, 1 + i, "tcp", SYN) for i in range(60)]) == []


def test_site_scanner_from_assets_is_counted_not_reported() -> None:
    cfg = AgentConfig.model_validate({"assets": [{"cidr": "10.0.0.0/28", "name": "scanners", "scanner": True},
                                                 {"cidr": "10.0.0.0/8", "name": "site"}]})
    assert cfg.detectors.portscan.scanners == ("10.0.0.0/28",)
    assert cfg.detectors.sweep.scanners == cfg.detectors.scan_distributed.scanners == ("10.0.0.0/28",)
    pipeline = Pipeline(cfg.detectors)
    pipeline.feed_all([pkt(i * 0.01, ATTACKER, VICTIM, 40000, p, "tcp", SYN) for i, p in enumerate(range(1, 100))])
    assert pipeline.findings == []
    scan = next(d for d in pipeline.detectors if isinstance(d, PortScanDetector))
    assert scan.suppressed == {ATTACKER: 1}
    assert AgentConfig.model_validate({"assets": [{"cidr": "10.0.0.0/8", "name": "x"}]}).detectors.portscan.scanners == ()


def test_bad_scanner_asset_is_reported_at_its_own_key() -> None:
    with pytest.raises(ValueError, match=r"assets\.0\.cidr") as info:
        AgentConfig.model_validate({"assets": [{"cidr": "nonsense", "name": "x", "scanner": True}]})
    assert "scanners" not in str(info.value)


def test_slow_scan_memory_is_bounded_per_pair_and_overall(caplog: pytest.LogCaptureFixture) -> None:
    """The bound in docs/detection.md: slow_max_sources pairs, each at most slow_ports ports (~2.4 KB)."""
    cap = 256
    det = PortScanDetector(PortScanConfig(slow_max_sources=cap, window_s=10.0), lambda f: None)
    caplog.set_level(logging.ERROR)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(5_000):  # 5,000 sources, each with a few unanswered probes
            src = f"198.18.{i // 256 % 256}.{i % 256}"
            for k in range(2):
                det.feed(Event(1e9 + i * 0.05 + k * 0.01, "t", NETWORK, src, VICTIM, 40000, 1 + k, "tcp", SYN))
            assert len(det.slow) <= cap
        for port in range(1, 1000):  # one source, thousands of ports: the pair keeps slow_ports of them
            det.feed(Event(1e9 + 2000 + port, "t", NETWORK, "192.0.2.1", VICTIM, 40000, port, "tcp", SYN))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    pair = det.slow.states[("192.0.2.1", VICTIM)]
    assert len(pair.ports) == det.config.slow_ports
    assert len(det.slow) <= cap
    # Every table of the detector together (the fast ones are windowed): at most 2.5 KB per slow pair
    # plus the fast tables' few hundred live keys.
    assert grown < cap * 2560 + 1_000_000, grown


# Hostile events: scan detectors must never raise, whatever a flow record or a decoder hands them.
_num = st.one_of(st.none(), st.integers(-5, 1 << 40), st.floats(allow_nan=True), st.text(max_size=5), st.booleans())
_attrs = st.one_of(st.none(), st.dictionaries(
    st.sampled_from(["flow", "packets", "bytes", "duration", "chunk", "inner_proto", "inner_src", "inner_dst",
                     "inner_sport", "inner_dport", "ttl"]),
    st.one_of(_num, st.sampled_from(["10.0.0.5", "::1", "x"])), max_size=11))
_events = st.builds(
    Event, time=st.floats(min_value=0, max_value=2e9, allow_nan=False), source=st.just("fuzz"),
    kind=st.sampled_from(KINDS),
    src=st.one_of(st.none(), st.sampled_from(["10.0.0.9", "10.0.0.5", "::1", "", "?", "198.51.100.1"])),
    dst=st.one_of(st.none(), st.sampled_from(["10.0.0.9", "10.0.0.5", "::2", "", "10.0.3.1"])),
    sport=st.one_of(st.none(), st.integers(-5, 70000)), dport=st.one_of(st.none(), st.integers(-5, 70000)),
    proto=st.sampled_from([None, "tcp", "udp", "icmp", "icmp6", "sctp", "47", "", "x1", "132"]),
    flags=st.integers(0, 255), attrs=_attrs)


HOSTILE_CONFIG = DetectorsConfig.model_validate(
    {"portscan": {"vertical_ports": 2, "horizontal_hosts": 2, "udp_ports": 2, "protocols": 2, "slow_ports": 2,
                  "window_s": 1.0, "scanners": ["10.0.0.9/32"]},
     "sweep": {"hosts": 2}, "scan_distributed": {"ports": 2, "sources": 2}})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_events, max_size=60))
def test_scan_detectors_never_fail_on_hostile_events(events: list[Event]) -> None:
    findings: list[Finding] = []
    detectors = [cls(getattr(HOSTILE_CONFIG, cls.id), findings.append)
                 for cls in (PortScanDetector, SweepDetector, DistributedScanDetector)]
    for ev in sorted(events, key=lambda e: e.time):
        for det in detectors:
            if ev.kind in det.kinds:
                det.feed(ev)  # no barrier here: an exception fails the test with its traceback
    for f in findings:
        assert f.first_seen <= f.last_seen and all(isinstance(v, str) for v in f.entities.values())


def test_zeek_udp_records_the_agent_answered_are_no_probes() -> None:
    """One conn.log record holds both directions: conn_state SF/SHR says the agent answered the manager."""
    def conn(i: int, state: str) -> Event:
        return pkt(i * 0.01, "10.0.0.2", f"10.0.3.{i % 150 + 1}", 45000, 161, "udp",
                   attrs={"flow": True, "packets": 2, "bytes": 150, "duration": 0.01, "conn_state": state})
    assert run([conn(i, "SF" if i % 2 else "SHR") for i in range(300)]) == []
    assert run([conn(i, "S0") for i in range(150)])  # unanswered: the same records are a scan
