"""Configuration drift findings, and the parsing SSH collection does before detection (recorded device output)."""

from __future__ import annotations

import json

from watchstander.agent.config.detectors import ArpSpoofConfig
from watchstander.agent.daemon.ssh_collect import (
    ArpTables,
    CollectedDevice,
    commands_for,
    config_diff,
    normalise_ios_config,
    normalise_nft_json,
    parse_arp_table_text,
    parse_ios_arp,
    parse_linux_neigh,
)
from watchstander.agent.detection.detectors.arpspoof import ArpSpoofDetector
from watchstander.agent.detection.detectors.drift import DRIFT_EVENT, ConfigDriftDetector, DriftConfig
from watchstander.agent.models import Finding
from watchstander.connectors.events import LOG, Event

# Recorded from IOS 15 (`show ip arp`); the age `-` rows are the router's own interfaces.
IOS_ARP = """\
Protocol  Address          Age (min)  Hardware Addr   Type   Interface
Internet  10.0.0.1                -   5254.0012.3401  ARPA   GigabitEthernet0/1
Internet  10.0.0.15              12   0050.56aa.0015  ARPA   GigabitEthernet0/1
Internet  10.0.0.20               0   0050.56aa.0020  ARPA   GigabitEthernet0/1
Internet  10.0.0.30               0   Incomplete      ARPA
Internet  192.168.9.1             -   5254.0012.3402  ARPA   GigabitEthernet0/2
"""

# Recorded from Debian 12 (`ip -j neigh`), IPv6 and a failed entry included.
LINUX_NEIGH = json.dumps([
    {"dst": "192.168.56.1", "dev": "ext0", "lladdr": "aa:bb:cc:00:00:01", "state": ["REACHABLE"]},
    {"dst": "192.168.56.9", "dev": "ext0", "state": ["FAILED"]},
    {"dst": "192.168.56.7", "dev": "ext0", "lladdr": "aa:bb:cc:00:00:07", "state": ["STALE"]},
    {"dst": "fe80::1", "dev": "ext0", "lladdr": "aa:bb:cc:00:00:01", "router": None, "state": ["STALE"]},
])

IOS_RUNNING = """\
Building configuration...

Current configuration : 1234 bytes
!
! Last configuration change at 10:01:02 UTC Mon Nov 30 2026 by admin
! NVRAM config last updated at 09:00:00 UTC Mon Nov 30 2026 by admin
!
hostname router
!
ntp clock-period 17179738
interface GigabitEthernet0/1
 no shutdown
!
end
"""

DEVICE = CollectedDevice("r1", "cisco-ios", "10.0.0.1")


def drift_event(t: float, sha: str, baseline: str = "b" * 64, diff: str = "-a\n+b\n",
                device: str = "r1", command: str = "show running-config") -> Event:
    return Event(t, f"ssh.collect:{device}", LOG, host=device, ref=f"ssh:{device}:{command}@{sha[:12]}",
                 attrs={"type": DRIFT_EVENT, "device": device, "command": command, "sha256": sha,
                        "baseline_sha256": baseline, "baseline_approved_by": "uid:0:root", "diff": diff,
                        "lines_added": 1, "lines_removed": 1})


def drift(events: list[Event], **config: object) -> list[Finding]:
    found: list[Finding] = []
    det = ConfigDriftDetector(DriftConfig(**config), found.append)  # type: ignore[arg-type]
    for ev in events:
        det.feed(ev)
    return found


def test_a_persisting_drift_is_one_finding_with_the_diff() -> None:
    found = drift([drift_event(100 + 60 * k, "c" * 64) for k in range(5)])
    assert len(found) == 1
    f = found[0]
    assert f.detector == "drift" and f.entities == {"victim": "r1", "device": "r1", "command": "show running-config"}
    assert f.count == 5 and f.first_seen == 100 and f.last_seen == 340
    assert f.attributes["diff"] == "-a\n+b\n" and f.attributes["baseline_sha256"] == "b" * 64
    assert f.counts["changed_versions"] == 1
    assert f.evidence == ["ssh:r1:show running-config@cccccccccccc"]


def test_a_further_change_updates_the_same_finding_and_a_new_baseline_opens_another() -> None:
    found = drift([drift_event(100, "c" * 64), drift_event(160, "d" * 64, diff="-a\n+d\n"),
                   drift_event(220, "e" * 64, baseline="d" * 64)])
    assert len(found) == 2
    first, second = found
    assert first.counts["changed_versions"] == 2 and first.attributes["diff"] == "-a\n+d\n"
    assert second.attributes["baseline_sha256"] == "d" * 64 and second.first_seen == 220


def test_other_log_events_and_malformed_drift_events_are_ignored() -> None:
    bad = drift_event(1, "c" * 64)
    assert bad.attrs is not None
    bad.attrs["diff"] = None
    assert drift([Event(1, "syslog", LOG, raw="hello", attrs={"type": "other"}), Event(2, "syslog", LOG), bad]) == []


def test_the_diff_kept_as_evidence_is_bounded() -> None:
    f = drift([drift_event(1, "c" * 64, diff="+x\n" * 1000)], max_diff=256)[0]
    assert len(f.attributes["diff"]) == 256 and f.attributes["diff_truncated"] is True


def test_config_diff_counts_every_line_but_keeps_a_bounded_text() -> None:
    before = "".join(f"line {i}\n" for i in range(100))
    after = before.replace("line 5\n", "line five\n") + "".join(f"new {i}\n" for i in range(500))
    d = config_diff(before, after, "base", "now", limit=1024)
    assert d.added == 501 and d.removed == 1 and d.truncated and len(d.text) <= 1024
    assert d.text.startswith("--- base\n+++ now\n")
    assert config_diff(before, before, "a", "b").text == ""


def test_ios_running_config_without_timestamps_and_ntp_drift() -> None:
    text = normalise_ios_config(IOS_RUNNING.replace("\n", "\r\n"))
    assert text == "!\n!\nhostname router\n!\ninterface GigabitEthernet0/1\n no shutdown\n!\nend\n"
    later = IOS_RUNNING.replace("10:01:02", "11:11:11").replace("17179738", "17179739").replace("1234", "1240")
    assert normalise_ios_config(later) == normalise_ios_config(IOS_RUNNING)


def test_nft_ruleset_without_counters_handles_metainfo_or_timed_elements() -> None:
    def ruleset(packets: int, handle: int, blocked: list[str]) -> str:
        return json.dumps({"nftables": [
            {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
            {"table": {"family": "inet", "name": "watchstander", "handle": handle}},
            {"set": {"family": "inet", "name": "block_v4", "table": "watchstander", "type": "ipv4_addr",
                     "handle": handle + 1, "flags": ["timeout"],
                     "elem": [{"elem": {"val": ip, "timeout": 600, "expires": 512}} for ip in blocked]}},
            {"rule": {"family": "inet", "table": "watchstander", "chain": "input", "handle": handle + 2,
                      "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                          "right": "@block_v4"}},
                               {"counter": {"packets": packets, "bytes": packets * 60}}, {"drop": None}]}},
        ]})

    a = normalise_nft_json(ruleset(0, 1, []))
    assert a == normalise_nft_json(ruleset(99, 7, ["192.0.2.1"]))
    assert "packets" not in a and "handle" not in a and "metainfo" not in a and '"counter"' in a
    assert normalise_nft_json("table inet x {}") == "table inet x {}"  # not JSON: kept as it came


def test_ios_arp_leaves_out_own_and_incomplete_entries() -> None:
    assert parse_ios_arp(IOS_ARP) == [("10.0.0.15", "00:50:56:aa:00:15"), ("10.0.0.20", "00:50:56:aa:00:20")]


def test_linux_neigh_keeps_ipv4_entries_with_an_address() -> None:
    assert parse_linux_neigh(LINUX_NEIGH) == [("192.168.56.1", "aa:bb:cc:00:00:01"),
                                              ("192.168.56.7", "aa:bb:cc:00:00:07")]
    assert parse_linux_neigh("not json") == [] and parse_linux_neigh("") == []


def test_commands_per_platform() -> None:
    assert [c.line for c in commands_for("cisco-ios", ("config", "arp"))] == ["show running-config", "show ip arp"]
    assert [c.line for c in commands_for("linux", ("config", "arp"))] == ["sudo -n nft -j list ruleset",
                                                                          "ip -j neigh"]
    assert [c.line for c in commands_for("linux", ("config",), sudo=False)] == ["nft -j list ruleset"]
    assert [c.name for c in commands_for("linux", ("arp",))] == ["ip -j neigh"]


def collections(*tables: str, device: CollectedDevice = DEVICE, every_s: float = 900) -> list[Finding]:
    """Feed ARP tables (IOS text) collected every_s apart to the real arpspoof detector."""
    found: list[Finding] = []
    det = ArpSpoofDetector(ArpSpoofConfig(), found.append)
    arp = ArpTables()
    for k, text in enumerate(tables):
        table = parse_arp_table_text("".join(f"{ip} {mac}\n" for ip, mac in parse_ios_arp(text)))
        for ev in arp.events(device, table, 1_700_000_000 + k * every_s):
            det.feed(ev)
    return found


def test_a_clean_table_collected_again_and_again_is_quiet() -> None:
    grown = IOS_ARP + "Internet  10.0.0.40               3   0050.56aa.0040  ARPA   GigabitEthernet0/1\n"
    assert collections(IOS_ARP, IOS_ARP, grown, grown, grown, IOS_ARP) == []


def test_several_addresses_on_one_mac_is_poisoning() -> None:
    poisoned = IOS_ARP.replace("0050.56aa.0015", "0050.56aa.0020")  # .20 answers for .15 too
    found = collections(poisoned)
    assert len(found) == 1
    f = found[0]
    assert f.detector == "arpspoof" and f.entities["attacker_mac"] == "00:50:56:aa:00:20"
    assert f.entities["victim"] == DEVICE.address
    assert set(f.entities["impersonated"].split(",")) == {"10.0.0.15", "10.0.0.20"}


def test_an_address_whose_mac_changed_since_the_last_collection_is_poisoning() -> None:
    # The gateway-like .15 now resolves to a MAC nobody used before: a conflicting binding.
    changed = IOS_ARP.replace("0050.56aa.0015", "0bad.0bad.0bad")
    found = collections(IOS_ARP, IOS_ARP, changed)
    assert len(found) == 1
    assert found[0].entities["attacker_mac"] == "0b:ad:0b:ad:0b:ad"
    assert found[0].attributes["conflicting_macs"] == ["00:50:56:aa:00:15"]
    # The poisoned table seen again keeps the same finding.
    assert len(collections(IOS_ARP, changed, changed, changed)) == 1
