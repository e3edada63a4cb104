"""The SNMP detectors on hand-made trap and poll events: thresholds, windows, merging, and odd input."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watchstander.agent.detection.detectors.base import Detector
from watchstander.agent.detection.detectors.ifanomaly import IfAnomalyConfig, IfAnomalyDetector
from watchstander.agent.detection.detectors.linkflap import LinkFlapConfig, LinkFlapDetector
from watchstander.agent.detection.detectors.reboot import RebootConfig, RebootDetector
from watchstander.agent.detection.detectors.snmp_auth import SnmpAuthConfig, SnmpAuthDetector
from watchstander.agent.models import Finding
from watchstander.connectors.events import LOG, Event


def trap(t: float, name: str, agent: str = "192.0.2.10", **attrs: Any) -> Event:
    return Event(t, "snmp-trap:test", LOG, src=agent, proto="snmp", ref=f"trap#{t}",
                 attrs={"snmp_trap": name, "agent": agent, **attrs})


def poll_system(t: float, uptime: int, device: str = "sw1") -> Event:
    return Event(t, "snmp-poll", LOG, src="192.0.2.20", host=device, ref=f"poll#{t}",
                 attrs={"snmp_poll": "system", "device": device, "agent": "192.0.2.20", "sys_uptime": uptime})


def poll_if(t: float, uptime: int, in_octets: int, out_octets: int = 0, errors: int = 0, speed: int = 1000,
            device: str = "sw1", index: int = 3) -> Event:
    return Event(t, "snmp-poll", LOG, src="192.0.2.20", host=device, ref=f"if#{t}",
                 attrs={"snmp_poll": "interface", "device": device, "agent": "192.0.2.20", "if_index": index,
                        "if_descr": "gi0/3", "sys_uptime": uptime, "in_octets": in_octets, "out_octets": out_octets,
                        "in_errors": errors, "out_errors": 0, "high_speed_mbps": speed})


def feed(detector: Detector, events: list[Event]) -> None:
    for ev in events:
        detector.feed(ev)


def collect() -> tuple[list[Finding], Any]:
    out: list[Finding] = []
    return out, out.append


def test_authentication_failure_bursts_from_one_agent() -> None:
    findings, emit = collect()
    det = SnmpAuthDetector(SnmpAuthConfig(failures=5, window_s=60), emit)
    feed(det, [trap(i * 10.0, "authenticationFailure") for i in range(4)])
    assert findings == []
    feed(det, [trap(40.0 + i, "authenticationFailure") for i in range(3)])
    (f,) = findings
    assert f.detector == "snmp_auth" and f.entities == {"victim": "192.0.2.10"}
    assert f.count == 7 and f.counts["failures"] == 7 and f.first_seen == 0.0 and f.last_seen == 42.0


def test_slow_authentication_failures_are_not_a_burst() -> None:
    findings, emit = collect()
    det = SnmpAuthDetector(SnmpAuthConfig(failures=5, window_s=60), emit)
    feed(det, [trap(i * 100.0, "authenticationFailure") for i in range(20)])
    assert findings == []


def test_unknown_communities_at_the_receiver_name_the_sender() -> None:
    findings, emit = collect()
    det = SnmpAuthDetector(SnmpAuthConfig(failures=3), emit)
    bad = [Event(float(i), "snmp-trap:test", LOG, src="203.0.113.7", ref=f"b#{i}",
                 attrs={"snmp_trap": "badCommunity", "agent": "203.0.113.7", "receiver": "0.0.0.0:162"})
           for i in range(3)]
    feed(det, bad + [trap(5.0, "linkUp")])
    (f,) = findings
    assert f.entities == {"attacker": "203.0.113.7", "victim": "0.0.0.0:162"}


def test_link_flapping_needs_repeated_transitions_of_one_interface() -> None:
    findings, emit = collect()
    det = LinkFlapDetector(LinkFlapConfig(transitions=6, window_s=300), emit)
    flaps = [trap(i * 5.0, "linkDown" if i % 2 == 0 else "linkUp", if_index=3, if_descr="gi0/3") for i in range(5)]
    other = [trap(1.0, "linkDown", if_index=4), trap(2.0, "linkUp", if_index=4)]
    feed(det, flaps + other)
    assert findings == []
    feed(det, [trap(30.0, "linkUp", if_index=3, if_descr="gi0/3")])
    (f,) = findings
    assert f.detector == "linkflap"
    assert f.entities == {"device": "192.0.2.10", "interface": "gi0/3", "if_index": "3"}
    assert f.counts["transitions"] == 6 and f.severity == "low"
    feed(det, [trap(31.0 + i, "linkDown" if i % 2 == 0 else "linkUp", if_index=3) for i in range(12)])
    assert f.severity == "medium" and f.attributes["last_state"] == "up" and len(findings) == 1


def test_cold_start_trap_and_uptime_drop_are_one_reboot() -> None:
    findings, emit = collect()
    det = RebootDetector(RebootConfig(window_s=600), emit)
    feed(det, [poll_system(0.0, 500_000), poll_system(60.0, 506_000)])
    assert findings == []
    feed(det, [trap(100.0, "coldStart", agent="192.0.2.20", device="sw1", sys_uptime=30),
               poll_system(120.0, 2_000)])
    (f,) = findings
    assert f.entities == {"device": "sw1"} and f.detector == "reboot"
    assert f.attributes["signals"] == ["coldStart", "sysUpTime decreased"]
    assert f.attributes["previous_uptime"] == 506_000 and f.count == 2


def test_uptime_wrapping_after_497_days_is_not_a_reboot() -> None:
    findings, emit = collect()
    det = RebootDetector(RebootConfig(), emit)
    feed(det, [poll_system(0.0, 2**32 - 3_000), poll_system(60.0, 3_000)])
    assert findings == []
    feed(det, [poll_system(120.0, 100)])  # now it went backwards for real
    assert len(findings) == 1


def test_warm_start_can_be_ignored() -> None:
    findings, emit = collect()
    feed(RebootDetector(RebootConfig(warm_start=False), emit), [trap(0.0, "warmStart")])
    assert findings == []
    feed(RebootDetector(RebootConfig(), emit), [trap(0.0, "warmStart")])
    assert findings[0].severity == "low"


def steady(n: int, rate_bps: float, start_t: float = 0.0, octets: int = 0, errors: int = 0,
           errors_per_poll: int = 0) -> tuple[list[Event], int, int]:
    """n polls 60 s apart at a steady rate; returns the events and the last counters."""
    events = []
    for i in range(n):
        events.append(poll_if(start_t + i * 60.0, int((start_t + i * 60.0) * 100) + 1, octets, errors=errors))
        octets += int(rate_bps * 60 / 8) + (i % 3) * 1000  # a little noise
        errors += errors_per_poll
    return events, octets, errors


def test_traffic_spike_against_the_interface_baseline() -> None:
    findings, emit = collect()
    det = IfAnomalyDetector(IfAnomalyConfig(), emit)
    events, octets, _ = steady(10, 50e6)  # 50 Mbit/s on a 1 Gbit/s port
    feed(det, events)
    assert findings == []
    # 500 Mbit/s for a minute: far above the baseline and over 30 % of the port.
    feed(det, [poll_if(600.0, 60_001, octets + int(500e6 * 60 / 8))])
    (f,) = findings
    assert f.entities == {"device": "sw1", "interface": "gi0/3", "metric": "traffic"}
    assert 0.5 < f.attributes["utilisation"] < 0.6  # the spike plus the last steady minute


def test_a_busy_but_usual_interface_is_not_an_anomaly() -> None:
    findings, emit = collect()
    det = IfAnomalyDetector(IfAnomalyConfig(), emit)
    events, _, _ = steady(40, 700e6)
    feed(det, events)
    assert findings == []


def test_saturation_is_reported_without_a_baseline() -> None:
    findings, emit = collect()
    det = IfAnomalyDetector(IfAnomalyConfig(), emit)
    feed(det, [poll_if(0.0, 1, 0, speed=100), poll_if(10.0, 1001, int(99e6 * 10 / 8), speed=100)])
    (f,) = findings
    assert "saturated" in f.title


def test_error_burst_and_counter_reset() -> None:
    findings, emit = collect()
    det = IfAnomalyDetector(IfAnomalyConfig(), emit)
    events, octets, errors = steady(8, 1e6)
    feed(det, events)
    feed(det, [poll_if(480.0, 48_001, octets, errors=errors + 6_000)])  # 100 errors/s
    (f,) = findings
    assert f.entities["metric"] == "errors" and f.attributes["errors_per_s"] == 100.0
    # The agent restarts: counters start over from zero; no finding from the drop.
    feed(det, [poll_if(540.0, 50, 0), poll_if(600.0, 6_050, 1000)])
    assert len(findings) == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries({}, optional={
    "snmp_trap": st.sampled_from(["linkDown", "linkUp", "coldStart", "warmStart", "authenticationFailure",
                                  "badCommunity", "other"]),
    "snmp_poll": st.sampled_from(["system", "interface", "x"]),
    "sys_uptime": st.one_of(st.none(), st.integers(-5, 2**33), st.text(max_size=3)),
    "in_octets": st.one_of(st.none(), st.integers(-(2**65), 2**65)),
    "out_octets": st.integers(0, 2**64), "in_errors": st.integers(-1, 2**33), "out_errors": st.integers(0, 9),
    "high_speed_mbps": st.one_of(st.integers(-1, 10**6), st.floats(allow_nan=True)),
    "if_index": st.one_of(st.none(), st.integers(), st.text(max_size=3)),
    "device": st.one_of(st.none(), st.text(max_size=5)),
}), max_size=30), st.lists(st.floats(0, 1e6), min_size=30, max_size=30))
def test_hostile_attributes_never_break_a_detector(attrs_list: list[dict[str, Any]], times: list[float]) -> None:
    findings, emit = collect()
    detectors: list[Detector] = [SnmpAuthDetector(SnmpAuthConfig(failures=2), emit),
                                 LinkFlapDetector(LinkFlapConfig(transitions=2), emit),
                                 RebootDetector(RebootConfig(), emit), IfAnomalyDetector(IfAnomalyConfig(), emit)]
    for t, attrs in zip(sorted(times), attrs_list):
        ev = Event(t, "fuzz", LOG, src="192.0.2.1", attrs=attrs)
        for det in detectors:
            det.feed(ev)
    for f in findings:
        assert f.first_seen <= f.last_seen
