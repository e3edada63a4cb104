"""SNMP abuse on recorded net-snmp traffic (tests/data/captures/snmp, see TRUTH.md) and public captures."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.snmp_capture import snmp_events

from watchstander.agent.config.detectors import SnmpAbuseConfig
from watchstander.agent.detection.detectors.snmp_abuse import SnmpAbuseDetector
from watchstander.agent.models import Finding
from watchstander.connectors.events import NETWORK, Event

CAPTURES = Path(__file__).resolve().parents[2] / "data" / "captures" / "snmp"


@functools.cache
def recorded(name: str) -> tuple[Event, ...]:
    return tuple(snmp_events(CAPTURES / f"{name}.pcap"))


def detect(events: Any, **config: Any) -> list[Finding]:
    found: list[Finding] = []
    det = SnmpAbuseDetector(SnmpAbuseConfig(**config), found.append)
    for ev in events:
        det.feed(ev)
    return found


def test_community_and_user_guessing_is_found_with_attacker_and_victim() -> None:
    (f,) = detect(recorded("guess"))
    assert f.techniques == ("T1110.001",)
    assert f.entities == {"attacker": "127.0.0.1", "victim": "127.0.0.1", "service": "snmp"}
    # 12 wrong v2c communities never answered + 3 v3 users answered with usmStatsUnknownUserNames
    assert f.counts["failed_names"] == 15
    assert "SNMP community guessing against 127.0.0.1 from 127.0.0.1" in f.title


def test_a_walk_with_the_right_community_is_quiet_without_managers() -> None:
    assert detect(recorded("walk")) == []


def test_a_walk_by_a_configured_manager_is_quiet_and_by_another_is_reported() -> None:
    assert detect(recorded("walk"), managers=["127.0.0.0/8"]) == []
    (f,) = detect(recorded("walk"), managers=["10.0.0.5"])
    assert f.techniques == ("T1602.001",) and f.entities["service"] == "snmp-walk"
    assert f.counts["walk_requests"] >= 20


def test_set_from_unexpected_manager_and_whether_it_was_accepted() -> None:
    (f,) = detect(recorded("set"), managers=["10.0.0.5"])
    assert f.techniques == ("T1602.001",) and f.title.endswith("which is not a configured manager")
    assert f.counts["sets"] == 3 and f.counts["sets_accepted"] == 1 and f.counts["sets_refused"] == 2
    assert f.attributes["accepted"] is True and f.severity == "high"
    assert detect(recorded("set"), managers=["127.0.0.1"]) == []


def test_without_managers_only_refused_sets_are_reported() -> None:
    (f,) = detect(recorded("set"))
    assert f.title == "SNMP SET refused by 127.0.0.1: 127.0.0.1 tried to write without write access (noAccess)"
    assert f.counts["sets_refused"] == 2
    accepted_only = [e for e in recorded("set") if (e.attrs or {}).get("snmp", {}).get("community") == "private"]
    assert len(accepted_only) == 2 and detect(accepted_only) == []


def test_sweep_of_forty_hosts_with_no_agent_answering() -> None:
    (f,) = detect(recorded("sweep"))
    assert f.techniques == ("T1046",)
    assert f.entities == {"attacker": "127.0.0.1", "victim": "127.0.1.0/26"}
    assert f.counts["distinct_hosts"] == 40 and f.counts["answered"] == 0


def test_sweep_is_seen_from_flow_records_without_decoding() -> None:
    flows = [Event(1000.0 + i, "netflow", NETWORK, "10.9.0.66", f"10.20.0.{i}", 40000 + i, 161, "udp",
                   attrs={"flow": True, "packets": 1, "bytes": 71, "duration": 0.0}) for i in range(1, 41)]
    (f,) = detect(flows)
    assert f.entities["attacker"] == "10.9.0.66" and f.entities["victim"] == "10.20.0.0/26"


def test_benign_manager_polling_many_devices_that_answer_is_quiet() -> None:
    events = []
    for round_ in range(3):
        for i in range(1, 101):
            t = 1000.0 + round_ * 60 + i * 0.05
            agent = f"10.20.{i // 250}.{i % 250}"
            req = {"version": 1, "pdu": "get", "community": "n0c", "request_id": i}
            resp = {**req, "pdu": "response", "error_status": 0, "error": "noError"}
            events.append(Event(t, "p", NETWORK, "10.9.0.2", agent, 50000, 161, "udp", attrs={"snmp": req}))
            events.append(Event(t + 0.01, "p", NETWORK, agent, "10.9.0.2", 161, 50000, "udp", attrs={"snmp": resp}))
    assert detect(events) == []
    assert detect(events, managers=["10.9.0.2"]) == []


@pytest.mark.shared
def test_public_snmpwalk_and_accepted_sets_are_quiet_unless_managers_say_otherwise(shared_telemetry: Path) -> None:
    pcaps = shared_telemetry / "snmp" / "pcaps"
    if not (pcaps / "snmpwalk-short.pcap").exists():
        pytest.skip("shared SNMP captures absent")
    assert detect(snmp_events(pcaps / "snmpwalk-short.pcap")) == []
    # SOURCES.md: 5 SETs from manager 172.31.19.54 to agent 172.31.19.73, all accepted: the site's
    # own manager, quiet by default; reported once managers are configured without it.
    assert detect(snmp_events(pcaps / "snmpv1_get.pcap")) == []
    (f,) = detect(snmp_events(pcaps / "snmpv1_get.pcap"), managers=["172.31.0.1"])
    assert f.entities["attacker"] == "172.31.19.54" and f.entities["victim"] == "172.31.19.73"
    assert f.counts["sets"] == 5 and f.counts["sets_accepted"] == 5


hostile_values = st.one_of(st.none(), st.integers(), st.text(max_size=20), st.binary(max_size=20),
                           st.floats(allow_nan=True), st.lists(st.integers(), max_size=3),
                           st.dictionaries(st.text(max_size=8), st.integers(), max_size=3))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from(["10.0.0.1", "10.0.0.2", "not-an-ip", "", "::1"]),
    st.sampled_from(["10.0.0.1", "10.0.0.9", "zz", "fe80::1"]),
    st.sampled_from([161, 162, 0, 65535]), st.sampled_from([161, 40000]),
    st.one_of(st.none(), st.dictionaries(st.sampled_from(["snmp", "flow", "resp_bytes"]), hostile_values),
              st.fixed_dictionaries({"snmp": st.dictionaries(
                  st.sampled_from(["pdu", "community", "user", "error", "usm_report"]),
                  st.one_of(hostile_values, st.sampled_from(["set", "getnext", "response", "report",
                                                             "authorizationError", "unknownUserNames"])))})),
), max_size=60))
def test_hostile_attrs_never_crash(items: list[tuple[str, str, int, int, Any]]) -> None:
    events = [Event(float(1000 + i), "h", NETWORK, s, d, sp, dp, "udp", attrs=a)
              for i, (s, d, dp, sp, a) in enumerate(items)]
    detect(events, sweep_hosts=2, guess_names=2, walk_requests=2, managers=["10.0.0.2"])
    detect(events, sweep_hosts=2, guess_names=2)


def test_memory_is_bounded_under_a_flood_of_sources() -> None:
    det = SnmpAbuseDetector(SnmpAbuseConfig(), lambda f: None)
    det.sessions.max_keys = det.sweeps.max_keys = 1000
    for i in range(5000):
        det.feed(Event(1000.0 + i * 0.001, "f", NETWORK, f"198.18.{i // 250}.{i % 250}", "10.0.0.1", 1, 161, "udp",
                       attrs={"snmp": {"pdu": "get", "community": f"c{i}"}}))
    assert len(det.sessions) <= 1000 and len(det.sweeps) <= 1000
