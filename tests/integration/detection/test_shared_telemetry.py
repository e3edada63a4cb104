"""Every attack capture and log in ../shared/telemetry yields the right detector, attacker and victim;
no benign control yields anything. Ground truth: ../shared/telemetry/SOURCES.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchstander.agent.app.replay import replay
from watchstander.agent.app.wiring import App
from watchstander.agent.config.model import AgentConfig
from watchstander.agent.models import Incident
from watchstander.agent.store.schema import open_store

pytestmark = [pytest.mark.integration, pytest.mark.shared]

# (file, detector, attacker or None, victim or None, extra entity checks)
ATTACKS: list[tuple[str, str, str | None, str | None, dict[str, str]]] = [
    ("pcaps/arppoison.pcapng", "arpspoof", "172.16.0.105", "172.16.0.107",
     {"attacker_mac": "00:25:b3:bf:91:ee", "impersonated": "172.16.0.1"}),
    ("pcaps/bruteforce.pcap", "bruteforce", "192.168.56.1", "192.168.56.101", {"service": "ftp"}),
    ("pcaps/dns-tunnel-iodine.pcap", "dnstunnel", "10.0.2.30", "10.0.2.20", {"domain": "pirate.sea"}),
    ("pcaps/hs-icmpScan.pcap", "sweep", "10.0.0.128", "10.0.0.0/24", {}),
    ("pcaps/pkt.TCP.synflood.spoofed.pcap", "synflood", None, "10.10.10.10", {"victim_port": "25565"}),
    ("pcaps/sshguess.pcap", "bruteforce", "192.168.56.1", "192.168.56.103", {"service": "ssh"}),
    ("pcaps/synscan.pcapng", "portscan", "172.16.0.8", "64.13.134.52", {}),
    ("pcaps/tcp_0_1000_20190821.pcap", "portscan", "172.31.15.102", "198.124.152.15", {}),
    ("logs/OpenSSH_2k.log", "bruteforce", "183.62.140.253", "LabSZ", {}),
    ("logs/OpenSSH_2k.log", "bruteforce", "187.141.143.180", "LabSZ", {}),
    ("logs/OpenSSH_2k.log", "bruteforce", "103.99.0.122", "LabSZ", {}),
    ("logs/OpenSSH_2k.log", "bruteforce", "112.95.230.3", "LabSZ", {}),
    ("logs/Linux_2k.log", "bruteforce", "150.183.249.110", "combo", {}),
    ("logs/iodine-dnsmasq/dnsmasq.log", "dnstunnel", "172.18.0.3", None, {"domain": "example.attack"}),
    ("logs/iodine-dnsmasq/tshark.capture", "dnstunnel", None, None, {"domain": "example.attack"}),
    ("ids/suricata-eve-honeypot-2018.json", "ids", "8.42.77.171", "138.68.3.71", {}),
]

BENIGN = [
    "pcaps/5-pings.pcap", "pcaps/arp-who-has.pcap", "pcaps/arp_gratuitous.pcapng", "pcaps/arp_resolution.pcapng",
    "pcaps/http_google.pcapng", "pcaps/icmp_echo.pcapng", "pcaps/icmp_traceroute.pcapng",
    "pcaps/single-conn.pcap", "pcaps/ssh.pcap", "pcaps/tcp_handshake.pcapng", "pcaps/var-services-std-ports.pcap",
    "pcaps/wikipedia.pcap", "pcaps/workshop_2011_browse.pcap", "pcaps/dns_axfr.pcapng",
    "logs/dns-benign-names.csv",
    "snmp/pcaps/snmpv1_get.pcap", "snmp/pcaps/snmpwalk-short.pcap", "snmp/pcaps/snmpv1-traps-wiresharkwiki.pcap",
]

# Detectors whose real evidence is traffic this project recorded itself with real tools (nmap, masscan,
# net-snmp, tcpdump, softflowd between test namespaces or on loopback; tests/data/captures/*/TRUTH*):
# ../shared holds no such attack. detector -> the test that checks it on that recording.
RECORDED = {
    "beacon": "tests/integration/detection/test_behaviour.py",
    "exfil": "tests/integration/detection/test_behaviour.py",
    "snmp_abuse": "tests/integration/detection/test_behaviour.py",
    "scan_distributed": "tests/integration/detection/test_scans_recorded.py",
    "lateral": "tests/integration/detection/test_lateral_recorded.py",
}
# Every recorded capture under tests/data/captures (generated ones aside): folder -> (its truth file,
# the detectors it is evidence for, its captures). beacon and exfil are recorded live by their test.
CAPTURES = Path(__file__).resolve().parents[2] / "data" / "captures"
RECORDED_CAPTURES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "scans": ("TRUTH.yaml", ("portscan", "sweep", "scan_distributed"), (
        "nmap-syn.pcap", "nmap-udp.pcap", "nmap-fin.pcap", "nmap-null.pcap", "nmap-xmas.pcap", "nmap-ack.pcap",
        "nmap-maimon.pcap", "nmap-window.pcap", "nmap-sctp-init.pcap", "nmap-ipproto.pcap", "nmap-sweep-arp.pcap",
        "nmap-sweep-ip.pcap", "nmap-horizontal-22.pcap", "nmap-horizontal-udp-161.pcap", "masscan-syn.pcap",
        "masscan-udp.pcap", "nmap-distributed.pcap")),
    "lateral": ("TRUTH.yaml", ("lateral",), ("learning.pcap", "movement.pcap")),
    "snmp": ("TRUTH.md", ("snmp_abuse",), ("guess.pcap", "set.pcap", "sweep.pcap", "walk.pcap")),
}
# Detectors whose generated evidence is not in the demo but in their own tests' generated data.
GENERATED = {
    "scan_distributed": "tests/integration/detection/test_scans_recorded.py",
    "beacon": "tests/unit/detection/test_beacon.py",
    "exfil": "tests/unit/detection/test_exfil.py",
    "lateral": "tests/unit/detection/test_lateral.py",
    "snmp_abuse": "tests/unit/detection/test_snmp_abuse.py",
}
# Known gaps, said here so that opening one is a visible change: detectors with no real traffic.
NO_REAL_TRAFFIC_YET: set[str] = set()

_cache: dict[str, list[Incident]] = {}


def incidents_for(shared: Path, rel: str, tmp_path_factory: pytest.TempPathFactory, clock) -> list[Incident]:  # type: ignore[no-untyped-def]
    """Replay one file into a fresh store (cached per file for this session)."""
    if rel not in _cache:
        db = tmp_path_factory.mktemp("replay") / "w.db"
        store = open_store(f"sqlite:///{db}")
        try:
            report = replay(App(AgentConfig(), store, clock), [shared / rel], "test")
        finally:
            store.close()
        assert sum(report.detector_failures.values()) == 0, report.detector_failures
        _cache[rel] = report.incidents
    return _cache[rel]


@pytest.mark.parametrize(("rel", "detector", "attacker", "victim", "extra"), ATTACKS,
                         ids=[f"{a[0]}:{a[2] or a[3] or a[4]}" for a in ATTACKS])
def test_attack_is_detected_with_attacker_and_victim(  # type: ignore[no-untyped-def]
    shared_telemetry, tmp_path_factory, clock, rel, detector, attacker, victim, extra,
) -> None:
    incidents = incidents_for(shared_telemetry, rel, tmp_path_factory, clock)
    matches = []
    for inc in incidents:
        for f in inc.findings.values():
            if f.detector != detector:
                continue
            if attacker is not None and f.entities.get("attacker") != attacker:
                continue
            if victim is not None and f.entities.get("victim") != victim:
                continue
            if all(f.entities.get(k) == v for k, v in extra.items()):
                matches.append((inc, f))
    found = [(i.title, f.entities) for i in incidents for f in i.findings.values()]
    assert matches, f"{rel}: no {detector} finding for attacker={attacker} victim={victim} {extra}; got {found}"
    # One campaign is one incident, however many packets or lines it spans.
    assert len({inc.fingerprint for inc, _ in matches}) == 1
    inc = matches[0][0]
    assert inc.verdict is not None and inc.verdict.provenance.analyst == "baseline"
    assert inc.techniques, "every incident carries ATT&CK technique ids"


@pytest.mark.parametrize("rel", BENIGN)
def test_benign_control_yields_nothing(shared_telemetry, tmp_path_factory, clock, rel) -> None:  # type: ignore[no-untyped-def]
    incidents = incidents_for(shared_telemetry, rel, tmp_path_factory, clock)
    assert incidents == [], [(i.title, i.entities()) for i in incidents]


def test_syn_flood_is_one_incident_without_a_spoofed_attacker(shared_telemetry, tmp_path_factory, clock) -> None:  # type: ignore[no-untyped-def]
    incidents = incidents_for(shared_telemetry, "pcaps/pkt.TCP.synflood.spoofed.pcap", tmp_path_factory, clock)
    assert len(incidents) == 1
    (finding,) = incidents[0].findings.values()
    assert finding.attributes["spoofed_sources"] is True
    assert finding.count == 37841


def test_vertical_scans_count_every_port(shared_telemetry, tmp_path_factory, clock) -> None:  # type: ignore[no-untyped-def]
    masscan = incidents_for(shared_telemetry, "pcaps/tcp_0_1000_20190821.pcap", tmp_path_factory, clock)
    assert len(masscan) == 1
    (f,) = masscan[0].findings.values()
    assert f.counts["distinct_ports"] == 1001
    nmap = incidents_for(shared_telemetry, "pcaps/synscan.pcapng", tmp_path_factory, clock)
    assert len(nmap) == 1
    assert next(iter(nmap[0].findings.values())).counts["distinct_ports"] >= 1000


def test_openssh_log_counts_each_attempt_once(shared_telemetry, tmp_path_factory, clock) -> None:  # type: ignore[no-untyped-def]
    incidents = incidents_for(shared_telemetry, "logs/OpenSSH_2k.log", tmp_path_factory, clock)
    by_attacker = {f.entities["attacker"]: f for i in incidents for f in i.findings.values()}
    # sshd's "Failed password" (286 lines) and PAM's "authentication failure" (287 lines) describe
    # the same attempts: the count is the larger layer's, not their sum (573).
    assert by_attacker["183.62.140.253"].counts["failed_logins"] == 287


def test_replaying_the_same_file_twice_updates_the_same_incident(shared_telemetry, tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        first = replay(App(AgentConfig(), store, clock), [shared_telemetry / "pcaps/sshguess.pcap"], "test")
        second = replay(App(AgentConfig(), store, clock), [shared_telemetry / "pcaps/sshguess.pcap"], "test")
    finally:
        store.close()
    assert [i.id for i in first.incidents] == [i.id for i in second.incidents]
    assert [i.fingerprint for i in first.incidents] == [i.fingerprint for i in second.incidents]


def test_every_detector_has_real_and_generated_samples() -> None:
    """Each registered detector is exercised by a real capture or log here and by the demo data."""
    from watchstander.agent.demo.data import DEMO_TRUTH
    from watchstander.agent.detection.detectors.registry import DETECTORS

    # Live-only detectors (SNMP traps and polls, SSH collection) are driven by snmptrap, snmpd and
    # sshd in their own tests (tests/integration/daemon/test_snmp_sources.py, test_ssh_collection.py).
    replayable = {d for d, cls in DETECTORS.items() if not cls.live_only}
    real = {a[1] for a in ATTACKS} | set(RECORDED)
    generated = {t[0] for t in DEMO_TRUTH} | set(GENERATED)
    assert replayable - real == NO_REAL_TRAFFIC_YET
    assert replayable <= generated
    repo = Path(__file__).resolve().parents[3]
    for det, test_file in {**RECORDED, **GENERATED}.items():
        assert det in (repo / test_file).read_text(encoding="utf-8"), (det, test_file)
    assert set(DETECTORS) - replayable == {"drift", "snmp_auth", "linkflap", "reboot", "ifanomaly"}


def test_recorded_capture_inventory_is_complete_and_has_ground_truth() -> None:
    """Every pcap under tests/data/captures is listed above, small, and named by its folder's truth file."""
    on_disk = {p.relative_to(CAPTURES).as_posix() for p in CAPTURES.rglob("*.pcap") if "generated" not in p.parts}
    listed = {f"{folder}/{name}" for folder, (_, _, names) in RECORDED_CAPTURES.items() for name in names}
    assert on_disk == listed
    for folder, (truth_file, detectors, names) in RECORDED_CAPTURES.items():
        truth = (CAPTURES / folder / truth_file).read_text(encoding="utf-8")
        for name in names:
            assert name in truth, (folder, name)
            assert (CAPTURES / folder / name).stat().st_size < 200_000, (folder, name)
        assert set(detectors) <= {a[1] for a in ATTACKS} | set(RECORDED), (folder, detectors)
