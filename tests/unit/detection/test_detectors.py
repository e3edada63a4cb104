"""Detectors on hand-made event streams: thresholds, windows, entities, and hostile input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchstander.agent.config.detectors import DETECTOR_IDS, DetectorsConfig
from watchstander.agent.detection.detectors.dnstunnel import base_domain, entropy
from watchstander.agent.detection.detectors.registry import DETECTORS, build_detectors, register
from watchstander.agent.detection.detectors.sweep import covering_network
from watchstander.agent.detection.pipeline import Pipeline
from watchstander.agent.models import Finding
from watchstander.connectors.events import ACK, ARP, AUTH, DETECTION, DNS, KINDS, NETWORK, SYN, Event


def run(events: list[Event], **overrides: Any) -> list[Finding]:
    """Feed events through every detector with default (or overridden) config."""
    pipeline = Pipeline(DetectorsConfig.model_validate(overrides))
    pipeline.feed_all(events)
    assert not pipeline.failures, pipeline.failures
    return pipeline.findings


def syn(t: float, src: str, dst: str, dport: int, sport: int = 40000) -> Event:
    return Event(t, "test", NETWORK, src, dst, sport, dport, "tcp", SYN, ref=f"t#{t}")


def test_registry_matches_config_and_rejects_duplicates() -> None:
    assert set(DETECTORS) == set(DETECTOR_IDS)
    with pytest.raises(ValueError, match="registered twice"):
        register(DETECTORS["portscan"])


def test_disabled_detectors_are_not_built() -> None:
    built = build_detectors(DetectorsConfig(disabled=("portscan", "ids")), lambda f: None)
    assert {d.id for d in built} == set(DETECTOR_IDS) - {"portscan", "ids"}


def test_vertical_scan_threshold_and_entities() -> None:
    below = [syn(i * 0.1, "203.0.113.5", "10.0.0.1", p) for i, p in enumerate(range(1, 30))]
    assert run(below) == []
    findings = run(below + [syn(3.0, "203.0.113.5", "10.0.0.1", 30), syn(3.1, "203.0.113.5", "10.0.0.1", 31)])
    (f,) = findings
    assert f.detector == "portscan"
    assert f.entities == {"attacker": "203.0.113.5", "victim": "10.0.0.1"}
    assert f.counts["distinct_ports"] == 31 and f.count == 31
    assert f.first_seen == 0.0 and f.last_seen == 3.1
    assert "T1046" in f.techniques


def test_scan_spread_beyond_the_window_is_not_a_scan() -> None:
    slow = [syn(i * 400.0, "203.0.113.5", "10.0.0.1", p) for i, p in enumerate(range(1, 100))]
    assert run(slow) == []


def test_syn_ack_and_established_traffic_are_not_attempts() -> None:
    events = [Event(i * 0.01, "t", NETWORK, "10.0.0.1", "10.0.0.2", 443, 1000 + i, "tcp", SYN | ACK)
              for i in range(500)]
    assert run(events) == []


def test_horizontal_scan() -> None:
    events = [syn(i * 0.01, "198.51.100.7", f"10.0.{i // 250}.{i % 250 + 1}", 445) for i in range(70)]
    (f,) = run(events)
    assert f.entities == {"attacker": "198.51.100.7", "victim_port": "445"}
    assert f.counts["distinct_hosts"] == 70


def test_syn_flood_from_spoofed_sources_has_no_attacker() -> None:
    events = [syn(i * 0.001, f"198.18.{i // 250 % 250}.{i % 250 + 1}", "10.0.0.80", 443, 1024 + i % 60000)
              for i in range(1500)]
    (f,) = run(events)
    assert f.detector == "synflood"
    assert "attacker" not in f.entities and f.entities["victim"] == "10.0.0.80"
    assert f.attributes["spoofed_sources"] is True and f.count == 1500


def test_syn_flood_from_one_source_names_it() -> None:
    events = [syn(i * 0.001, "198.51.100.9", "10.0.0.80", 443, 1024 + i) for i in range(1200)]
    floods = [f for f in run(events) if f.detector == "synflood"]
    assert floods and floods[0].entities["attacker"] == "198.51.100.9"


def auth(t: float, src: str, outcome: str = "failure", layer: str = "sshd", user: str = "root") -> Event:
    return Event(t, "test", AUTH, src, "bastion", None, None, "ssh", user=user, outcome=outcome,
                 attrs={"layer": layer, "service": "ssh"}, ref=f"log:{t}")


def test_bruteforce_counts_sshd_and_pam_lines_of_one_attempt_once() -> None:
    events = []
    for i in range(9):
        events += [auth(i, "192.0.2.1", layer="sshd"), auth(i, "192.0.2.1", layer="pam")]
    assert run(events) == []  # 9 attempts, 18 lines: below the threshold of 10
    (f,) = run(events + [auth(10, "192.0.2.1")])
    assert f.counts["failed_logins"] == 10


def test_success_after_guessing_is_critical() -> None:
    events = [auth(i, "192.0.2.1", user=f"u{i}") for i in range(12)]
    events.append(auth(20, "192.0.2.1", outcome="success", user="deploy"))
    (f,) = run(events)
    assert f.severity == "critical"
    assert f.attributes["compromised_user"] == "deploy"
    assert "T1078" in f.techniques


def test_ssh_connection_burst_from_packets_counts_retransmits_once() -> None:
    retransmits = [syn(i * 0.5, "192.0.2.9", "10.0.0.22", 22, sport=50000) for i in range(20)]
    assert run(retransmits) == []
    (f,) = run([syn(i * 5.0, "192.0.2.9", "10.0.0.22", 22, sport=50000 + i) for i in range(8)])
    assert f.entities["service"] == "ssh" and f.counts["connections"] == 8


def echo(t: float, src: str, dst: str) -> Event:
    return Event(t, "test", NETWORK, src, dst, 8, 0, "icmp", ref=f"t#{t}")


def test_icmp_sweep_reports_the_covering_network() -> None:
    (f,) = run([echo(i * 0.01, "10.0.0.128", f"10.0.0.{i}") for i in range(1, 60)])
    assert f.entities == {"attacker": "10.0.0.128", "victim": "10.0.0.0/26"}


def test_traceroute_to_one_host_is_not_a_sweep() -> None:
    assert run([echo(i * 0.1, "192.168.1.10", "8.8.8.8") for i in range(100)]) == []


def test_covering_network() -> None:
    assert covering_network({"10.0.0.1", "10.0.0.254"}) == "10.0.0.0/24"
    assert covering_network({"10.0.0.1"}) == "10.0.0.1/32"
    assert covering_network({"10.0.0.1", "::1"}) == "mixed"


def arp(t: float, op: int, hwsrc: str, psrc: str, pdst: str, eth_dst: str = "ff:ff:ff:ff:ff:ff") -> Event:
    return Event(t, "test", ARP, psrc, pdst, proto="arp", ref=f"t#{t}",
                 attrs={"op": op, "hwsrc": hwsrc, "hwdst": "00:00:00:00:00:00", "eth_src": hwsrc, "eth_dst": eth_dst})


GW_MAC, VICTIM_MAC, EVIL_MAC = "02:00:00:00:00:01", "02:00:00:00:00:0f", "02:00:de:ad:be:ef"


def test_arp_poisoning_after_a_genuine_answer() -> None:
    events = [
        arp(0, 1, VICTIM_MAC, "10.0.0.15", "10.0.0.1"),
        arp(0.01, 2, GW_MAC, "10.0.0.1", "10.0.0.15", eth_dst=VICTIM_MAC),
        *[arp(5 + k, 2, EVIL_MAC, "10.0.0.1", "10.0.0.15", eth_dst=VICTIM_MAC) for k in range(3)],
    ]
    (f,) = run(events)
    assert f.detector == "arpspoof"
    assert f.entities["attacker_mac"] == EVIL_MAC and f.entities["victim"] == "10.0.0.15"
    assert f.entities["impersonated"] == "10.0.0.1"
    assert f.attributes["conflicting_macs"] == [GW_MAC]


def test_ordinary_and_gratuitous_arp_are_quiet() -> None:
    events = [
        arp(0, 1, VICTIM_MAC, "10.0.0.15", "10.0.0.1"),
        arp(0.01, 2, GW_MAC, "10.0.0.1", "10.0.0.15", eth_dst=VICTIM_MAC),
        arp(1, 1, GW_MAC, "10.0.0.1", "10.0.0.1"),  # gratuitous announcement
        arp(2, 2, GW_MAC, "10.0.0.1", "10.0.0.1"),  # gratuitous reply, broadcast
        arp(60, 1, VICTIM_MAC, "10.0.0.15", "10.0.0.1"),
        arp(60.01, 2, GW_MAC, "10.0.0.1", "10.0.0.15", eth_dst=VICTIM_MAC),
    ]
    assert run(events) == []


def dnsq(t: float, name: str, qtype: int = 1, src: str = "10.0.0.40") -> Event:
    return Event(t, "test", DNS, src, "10.0.0.53", 40000, 53, "udp",
                 attrs={"qname": name, "qtype": qtype, "response": False}, ref=f"t#{t}")


def test_dns_tunnel_by_long_high_entropy_labels() -> None:
    import base64
    import random

    rng = random.Random(1)
    names = [base64.b32encode(rng.randbytes(30)).decode().rstrip("=").lower() + f".{i}.t.evil.example"
             for i in range(12)]
    (f,) = run([dnsq(i, n, 16) for i, n in enumerate(names)])
    assert f.entities == {"attacker": "10.0.0.40", "domain": "evil.example", "victim": "10.0.0.53"}


def test_dns_tunnel_by_record_types() -> None:
    (f,) = run([dnsq(i, f"a{i}b.tunnel.example", 10) for i in range(12)])
    assert "NULL/TXT/ANY" in f.attributes["reason"]


def test_ordinary_lookups_are_quiet() -> None:
    names = ["www.example.com", "mail.example.com", "cdn.example.net", "api.example.org", "login.example.com"]
    events = [dnsq(i, names[i % len(names)]) for i in range(500)]
    events += [dnsq(600 + i, f"host{i}.corp.example.mil") for i in range(30)]  # many short names
    assert run(events) == []


def test_base_domain_and_entropy() -> None:
    assert base_domain("a.b.example.co.uk") == ("a.b", "example.co.uk")
    assert base_domain("example.com") == ("", "example.com")
    assert base_domain("x.pirate.sea") == ("x", "pirate.sea")
    assert entropy("") == 0.0 and entropy("aaaa") == 0.0 and entropy("ab") == 1.0


def test_ids_alert_passes_with_mapped_severity() -> None:
    ev = Event(0, "eve", DETECTION, "203.0.113.9", "10.0.0.25", 1234, 80, "tcp", ref="eve:1",
               attrs={"signature": "ET EXPLOIT Struts (CVE-2017-5638)", "signature_id": 1, "category": "x",
                      "severity": 1})
    (f,) = run([ev, ev])
    assert f.severity == "high" and f.techniques == ("T1190",) and f.count == 2


@pytest.mark.slow
def test_window_tables_stay_bounded_under_spoofed_floods() -> None:
    pipeline = Pipeline(DetectorsConfig())
    pipeline.feed_all(syn(i * 0.01, f"198.18.{i // 65536 % 256}.{i // 256 % 256}", f"10.1.{i % 256}.1", 80,
                          1024 + i % 60000) for i in range(300_000))
    for det in pipeline.detectors:
        for table in vars(det).values():
            if hasattr(table, "states"):
                assert len(table) <= 200_000


# Hostile and malformed events: detectors must never raise, whatever the fields hold.
_text = st.one_of(st.none(), st.text(max_size=80), st.sampled_from(["0.0.0.0", "::", "10.0.0.1", "", "?"]))
_port = st.one_of(st.none(), st.integers(min_value=-5, max_value=70000))
_attrs = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["op", "hwsrc", "eth_dst", "qname", "qtype", "response", "layer",
                                     "signature", "severity", "signature_id", "category"]),
                    st.one_of(st.none(), st.integers(-3, 300), st.text(max_size=300), st.booleans()),
                    max_size=8),
)
_event = st.builds(
    Event,
    time=st.floats(min_value=0, max_value=2e9, allow_nan=False),
    source=st.just("fuzz"),
    kind=st.sampled_from(KINDS),
    src=_text, dst=_text, sport=_port, dport=_port,
    proto=st.sampled_from([None, "tcp", "udp", "icmp", "icmp6", "ssh", "ftp", "arp", "17"]),
    flags=st.integers(min_value=0, max_value=255),
    user=_text,
    outcome=st.sampled_from([None, "failure", "success", "invalid_user", "weird"]),
    attrs=_attrs,
    ref=_text,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event, max_size=60))
def test_detectors_never_fail_on_malformed_events(events: list[Event]) -> None:
    pipeline = Pipeline(DetectorsConfig.model_validate(
        {"portscan": {"vertical_ports": 2, "horizontal_hosts": 2}, "sweep": {"hosts": 2},
         "bruteforce": {"failures": 2, "ssh_connections": 2}, "synflood": {"syns": 10},
         "dnstunnel": {"unique_names": 2, "long_names": 1}, "arpspoof": {"unsolicited_replies": 1}}))
    pipeline.feed_all(sorted(events, key=lambda e: e.time))
    assert not pipeline.failures
    for f in pipeline.findings:
        assert f.first_seen <= f.last_seen
        assert all(isinstance(v, str) for v in f.entities.values())


def test_bruteforce_counts_flow_records_of_new_ssh_connections() -> None:
    """A flow record ORs the client's SYN with its handshake ACK; one with SYN is one new connection."""
    from watchstander.connectors.events import FIN, PSH

    def record(i: int, flags: int, dport: int = 22, sport: int = 50000) -> Event:
        return Event(i * 2.0, "test", NETWORK, "198.51.100.4", "10.0.0.22", sport + i, dport, "tcp", flags,
                     attrs={"flow": True, "packets": 14, "bytes": 2900, "duration": 1.5}, ref=f"t#{i}")
    found = [f for f in run([record(i, SYN | ACK | PSH | FIN) for i in range(12)]) if f.detector == "bruteforce"]
    assert [f.entities["attacker"] for f in found] == ["198.51.100.4"]
    # the server's side of each flow (SYN+ACK from port 22) and ACK-only records cut mid-connection do not count
    quiet = [record(i, SYN | ACK | PSH | FIN, dport=50000 + i, sport=22 - i) for i in range(12)]
    quiet += [record(i, ACK | PSH) for i in range(12)]
    assert [f for f in run(quiet) if f.detector == "bruteforce"] == []
