"""Every scan technique on recorded real traffic (nmap and masscan between namespaces) and on generated
edge cases: the right detector, technique, attacker, victim and ATT&CK ids, from packets and from the
flow records of the same traffic; benign controls and the site's own scanner stay quiet.

Ground truth: tests/data/captures/scans/TRUTH.yaml (recorded, distributed) and generated/GENERATED.yaml.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.pcap_flows import flow_events
from watchstander.agent.config.detectors import DetectorsConfig
from watchstander.agent.config.model import AgentConfig
from watchstander.agent.detection.detectors.portscan import PortScanDetector
from watchstander.agent.detection.pipeline import Pipeline
from watchstander.agent.models import Finding
from watchstander.connectors.events import Event
from watchstander.connectors.packets import read_packets

pytestmark = pytest.mark.integration

SCANS = Path(__file__).resolve().parents[2] / "data" / "captures" / "scans"
GENERATED_DIR = SCANS / "generated"
_TRUTH_DOC = yaml.safe_load((SCANS / "TRUTH.yaml").read_text())
TRUTH = _TRUTH_DOC["recorded"]
(DISTRIBUTED,) = _TRUTH_DOC["distributed"]
GENERATED_TRUTH = {t["file"]: t for t in yaml.safe_load((GENERATED_DIR / "GENERATED.yaml").read_text())["generated"]}
SCAN_DETECTORS = ("portscan", "sweep", "scan_distributed")

# technique in the truth file -> (detector, what identifies it in the finding's attributes)
EXPECTED: dict[str, tuple[str, dict[str, str]]] = {
    "tcp-syn": ("portscan", {"technique": "tcp-syn", "shape": "vertical"}),
    "udp": ("portscan", {"technique": "udp", "shape": "vertical"}),
    "tcp-fin": ("portscan", {"technique": "tcp-fin"}),
    "tcp-null": ("portscan", {"technique": "tcp-null"}),
    "tcp-xmas": ("portscan", {"technique": "tcp-xmas"}),
    "tcp-ack": ("portscan", {"technique": "tcp-ack"}),
    "tcp-maimon": ("portscan", {"technique": "tcp-maimon"}),
    "sctp-init": ("portscan", {"technique": "sctp-init"}),
    "ip-protocol": ("portscan", {"technique": "ip-protocol"}),
    "sweep-arp": ("sweep", {"method": "ARP"}),
    "sweep-icmp": ("sweep", {"method": "ICMP echo"}),
    "horizontal-tcp": ("portscan", {"technique": "tcp-syn", "shape": "horizontal"}),
    "horizontal-udp": ("portscan", {"technique": "udp", "shape": "horizontal"}),
}


def detect(events: list[Event], config: DetectorsConfig | None = None) -> list[Finding]:
    """Every scan finding the default detectors open on `events`."""
    pipeline = Pipeline(config or DetectorsConfig())
    pipeline.feed_all(events)
    assert not pipeline.failures, pipeline.failures
    return [f for f in pipeline.findings if f.detector in SCAN_DETECTORS]


def matches(f: Finding, truth: dict[str, Any]) -> bool:
    """True when the finding names the truth's technique, attacker and victim."""
    detector, attrs = EXPECTED[truth["technique"]]
    if f.detector != detector or any(f.attributes.get(k) != v for k, v in attrs.items()):
        return False
    victim = f.attributes.get("targets") if f.attributes.get("shape") == "horizontal" else f.entities.get("victim")
    return bool(f.entities.get("attacker") == truth["attacker"] and victim == truth["victim"])


@pytest.mark.parametrize("truth", TRUTH, ids=[t["file"] for t in TRUTH])
def test_recorded_scan_is_detected_from_packets(truth: dict[str, Any]) -> None:
    pcap = SCANS / truth["file"]
    assert pcap.stat().st_size < 200_000
    findings = detect(list(read_packets(pcap)))
    hits = [f for f in findings if matches(f, truth)]
    assert len(hits) == 1, [(f.title, f.entities, f.attributes) for f in findings]
    (f,) = hits
    expected_ids = ("T1018",) if truth["technique"].startswith("sweep") else ("T1046",)
    assert f.techniques == expected_ids  # private addresses: discovery inside, not reconnaissance
    assert truth["attacker"] in f.title
    assert len(findings) == 1, "one scan, one finding: " + "; ".join(x.title for x in findings)


@pytest.mark.parametrize("truth", [t for t in TRUTH if t["technique"] != "sweep-arp"],
                         ids=[t["file"] for t in TRUTH if t["technique"] != "sweep-arp"])
def test_recorded_scan_is_detected_from_flow_records(truth: dict[str, Any]) -> None:
    findings = detect(flow_events(SCANS / truth["file"]))
    assert [f for f in findings if matches(f, truth)], [(f.title, f.attributes) for f in findings]


def test_window_scan_reads_as_ack_scan_and_says_so() -> None:
    (f,) = detect(list(read_packets(SCANS / "nmap-window.pcap")))
    assert f.title == "TCP ACK (or window) port scan of 10.0.0.5 from 10.0.0.9 (200 ports)"


def test_udp_scan_counts_probed_and_unanswered_ports() -> None:
    (f,) = detect(list(read_packets(SCANS / "nmap-udp.pcap")))
    # 102 ports probed; 123 answered (an open NTP-like service), so 101 are evidence.
    assert f.title == "UDP port scan of 10.0.0.5 from 10.0.0.9 (102 ports)"
    assert (f.counts["distinct_ports"], f.counts["unanswered_ports"]) == (102, 101)


def test_allow_listed_scanner_is_counted_not_reported() -> None:
    config = AgentConfig.model_validate({"assets": [{"cidr": "10.0.0.9/32", "name": "site-nessus",
                                                     "scanner": True}]}).detectors
    pipeline = Pipeline(config)
    for name in ("nmap-syn.pcap", "nmap-udp.pcap", "nmap-sweep-ip.pcap", "nmap-horizontal-22.pcap"):
        pipeline.feed_all(read_packets(SCANS / name))
    assert [f for f in pipeline.findings if f.detector in SCAN_DETECTORS] == []
    scan = next(d for d in pipeline.detectors if isinstance(d, PortScanDetector))
    assert scan.suppressed["10.0.0.9"] == 3  # SYN, UDP, horizontal
    sweep = next(d for d in pipeline.detectors if d.id == "sweep")
    assert sweep.suppressed["10.0.0.9"] == 1  # type: ignore[attr-defined]


def distributed_matches(f: Finding, truth: dict[str, Any]) -> bool:
    """True when the finding is the distributed scan of the truth's target by exactly its sources."""
    return (f.detector == "scan_distributed" and f.entities.get("victim") == truth["target"]
            and f.attributes.get("shape") == "distributed"
            and sorted(f.attributes.get("sources", [])) == sorted(truth["sources"]))


@pytest.mark.parametrize("path", ["packets", "flows"])
def test_recorded_distributed_scan_names_every_source_and_the_target(path: str) -> None:
    pcap = SCANS / DISTRIBUTED["file"]
    assert pcap.stat().st_size < 200_000
    events = list(read_packets(pcap)) if path == "packets" else flow_events(pcap)
    findings = detect(events)
    assert len(findings) == 1, [(f.title, f.attributes) for f in findings]
    (f,) = findings
    assert distributed_matches(f, DISTRIBUTED), (f.title, f.entities, f.attributes)
    assert f.techniques == ("T1046",)  # private sources: discovery inside the network
    assert "attacker" not in f.entities  # no one source is the attacker
    # Ports 1-70 probed; 22 answered (the victim's open port), so 69 are evidence.
    assert f.title == "Distributed TCP SYN port scan of 10.0.0.5 from 5 sources (69 ports)"
    assert f.counts["distinct_ports"] == 69


@pytest.mark.parametrize("source", DISTRIBUTED["sources"])
def test_each_distributed_source_alone_stays_under_every_scan_threshold(source: str) -> None:
    """What makes it distributed: one source's share of the recorded scan raises nothing."""
    events = [e for e in read_packets(SCANS / DISTRIBUTED["file"]) if source in (e.src, e.dst)]
    assert events
    assert detect(events) == []


def test_distributed_scan_from_the_sites_own_scanners_is_not_counted() -> None:
    config = AgentConfig.model_validate({"assets": [{"cidr": "10.0.0.16/28", "name": "site-scanners",
                                                     "scanner": True}]}).detectors
    assert detect(list(read_packets(SCANS / DISTRIBUTED["file"])), config) == []


GENERATED: list[tuple[str, str, str | None, str, tuple[str, ...], str]] = [
    # (capture, detector, attacker, victim, ATT&CK ids, shape)
    ("distributed", "scan_distributed", None, "10.0.0.5", ("T1595.001", "T1046"), "distributed"),
    ("low-and-slow", "portscan", "10.0.0.66", "10.0.0.5", ("T1046",), "low-and-slow"),
    ("horizontal-445", "portscan", "10.0.0.77", "10.0.2.0/24", ("T1046",), "horizontal"),
    ("unicornscan-udp-unreachables", "portscan", "10.0.0.88", "10.0.0.5", ("T1046",), "vertical"),
]


@pytest.mark.parametrize(("name", "detector", "attacker", "victim", "ids", "shape"), GENERATED,
                         ids=[g[0] for g in GENERATED])
def test_generated_edge_case(name: str, detector: str, attacker: str | None, victim: str,
                             ids: tuple[str, ...], shape: str) -> None:
    pcap = GENERATED_DIR / f"{name}.pcap"
    truth = GENERATED_TRUTH[pcap.name]
    for events in (list(read_packets(pcap)), flow_events(pcap)):
        findings = detect(events)
        if shape == "vertical" and events and events[0].attrs and events[0].attrs.get("flow"):
            assert findings == []  # ICMP unreachables alone carry no port in a flow record
            continue
        (f,) = findings
        assert (f.detector, f.entities.get("attacker"), f.techniques, f.attributes["shape"]) == (
            detector, attacker, ids, shape)
        got_victim = f.attributes.get("targets") if shape == "horizontal" else f.entities["victim"]
        assert got_victim == victim
    if name == "distributed":
        assert sorted(f.attributes["sources"]) == sorted(truth["sources"])
        assert "12 sources" in f.title


@pytest.mark.parametrize("name", ["benign-ntp-snmp", "benign-web-traceroute"])
def test_benign_controls_stay_quiet(name: str) -> None:
    pcap = GENERATED_DIR / f"{name}.pcap"
    assert detect(list(read_packets(pcap))) == []
    assert detect(flow_events(pcap)) == []


@pytest.mark.privileged
@pytest.mark.slow
def test_live_recording_of_a_udp_scan(tmp_path: Path) -> None:
    """Record one nmap UDP scan between fresh namespaces, as record_scans.py does, and detect it."""
    from tests.support import record_scans
    from tests.support.netns import netns_skip_reason

    reason = netns_skip_reason()
    if reason:
        pytest.skip(reason)
    for tool in ("nmap", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs Debian's {tool}")
    keep = record_scans.SCANS
    record_scans.SCANS = [s for s in keep if s[0] == "nmap-udp"]
    try:
        (truth,) = record_scans.record(tmp_path)
    finally:
        record_scans.SCANS = keep
    findings = detect(list(read_packets(tmp_path / str(truth["file"]))))
    assert [f for f in findings if matches(f, truth)], [f.title for f in findings]


@pytest.mark.privileged
@pytest.mark.slow
def test_live_recording_of_a_distributed_scan(tmp_path: Path) -> None:
    """Record the five concurrent nmap scans between fresh namespaces, as record_scans.py does, and detect them."""
    from tests.support import record_scans
    from tests.support.netns import netns_skip_reason

    reason = netns_skip_reason()
    if reason:
        pytest.skip(reason)
    for tool in ("nmap", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs Debian's {tool}")
    truth = record_scans.record_distributed(tmp_path)
    findings = detect(list(read_packets(tmp_path / str(truth["file"]))))
    assert [f.title for f in findings] == [
        "Distributed TCP SYN port scan of 10.0.0.5 from 5 sources (69 ports)"]
    assert distributed_matches(findings[0], truth)
