"""The packet, flow and Zeek paths find the same attacks on the same recorded activity; benign controls
stay quiet on all three. One test per activity runs all three paths (support.three_paths):

- packets: the capture replayed as `watchstander replay` does;
- flows: Debian's softflowd reads the same capture (-r) and exports it as NetFlow v5, v9 and IPFIX to the
  daemon's UDP collector on loopback; the detectors read the flow events in the order they arrived;
- zeek: Zeek is not installable here. Zeek's OWN logs are used where ../shared/telemetry holds them for
  the capture: the SSH brute force is Zeek's notice.log (SSH::Password_Guessing, the btest baseline of
  detect-bruteforcing on sshguess.pcap) and the benign SSH control is Zeek's conn.log and ssh.log of
  ssh.pcap, their masked times put back from the capture (support.zeek_samples.unmask). For every other
  activity the conn.log is DERIVED from the capture (support.three_paths.derived_conn_rows: TCP by
  support.zeek_samples.conn_rows_from_packets, UDP and ICMP beside it), written by support.zeek_writer
  in Zeek's TSV and JSON forms; both are read by the real reader (connectors/zeek.py).

Attacks are compared as (detector family, attacker, victim, base ATT&CK ids); a Zeek notice counts as
the family its ATT&CK technique names. Where a path cannot see an attack (NATURE), or could but does not
(GAP: a bug, its fix in the row), DIFFERENCES and FALSE_ALARMS say so and why; the test checks each row
still holds, so a row that stops being true fails and must go. SPLITS lists where a path reports one
attack as more than one finding.

Ground truth: tests/data/captures/scans/TRUTH.yaml (recorded with nmap and masscan), generated/GENERATED.yaml
(scapy-made edge cases and benign controls), ../shared/telemetry/SOURCES.md (sshguess.pcap: 192.168.56.1
guesses SSH passwords on 192.168.56.103; ssh.pcap: benign SSH sessions).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.three_paths import (
    SOFTFLOWD,
    Attack,
    attack,
    attacks,
    derived_conn_rows,
    flow_findings,
    replay_findings,
)
from support.zeek_samples import unmask
from support.zeek_writer import json_log, tsv_log

from watchstander.agent.models import Finding

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]
SCANS = REPO / "tests" / "data" / "captures" / "scans"
SHARED = REPO.parent / "shared" / "telemetry"
ZEEK_BASE = "ids/zeek-expected"
RECORDED = yaml.safe_load((SCANS / "TRUTH.yaml").read_text())
GENERATED = yaml.safe_load((SCANS / "generated" / "GENERATED.yaml").read_text())["generated"]
NOW = datetime.now(UTC)  # fixed for the run; every capture is older, so no time is taken for a bad one
FLOW_VERSIONS = (5, 9, 10)  # NetFlow v5, v9, IPFIX
NATURE, GAP = "cannot see it by nature", "could see it: a gap, fix reported"


def _clock() -> datetime:
    return NOW


@dataclass(frozen=True)
class Activity:
    """One activity: its capture, the Zeek logs of it (Zeek's own, or None: derived) and its ground truth."""

    name: str
    capture: str  # under tests/data/captures/scans, or "shared:" + a path under ../shared/telemetry
    truth: frozenset[Attack]
    zeek_own: tuple[str, ...] = ()  # Zeek's own logs under ../shared/telemetry/ids/zeek-expected
    also: frozenset[Attack] = frozenset()  # further attacks the activity rightly shows, beyond its truth file

    def pcap(self) -> Path:
        """The capture's path (skips when ../shared is absent)."""
        if not self.capture.startswith("shared:"):
            return SCANS / self.capture
        if not SHARED.is_dir():
            pytest.skip(f"shared telemetry not found at {SHARED}: the {self.name} activity needs ../shared")
        return SHARED / self.capture.removeprefix("shared:")


# nmap's SNMP probes of 128 hosts are also SNMP abuse (one manager trying many agents), on every path.
ALSO = {"nmap-horizontal-udp-161.pcap": frozenset({Attack("snmp_abuse", "10.0.0.9", "10.0.1.0/26", ("T1046",))})}


def _recorded(t: dict[str, Any]) -> Activity:
    technique = str(t["technique"])
    if technique.startswith("distributed"):
        truth = Attack("scan_distributed", "?", t["target"], ("T1046",))
    elif technique.startswith("sweep"):
        truth = Attack("sweep", t["attacker"], t["victim"], ("T1018",))
    else:
        truth = Attack("portscan", t["attacker"], t["victim"], ("T1046",))
    return Activity(t["file"].removesuffix(".pcap"), t["file"], frozenset({truth}), also=ALSO.get(t["file"], frozenset()))


def _generated(t: dict[str, Any]) -> Activity:
    name, capture = "generated-" + t["file"].removesuffix(".pcap"), "generated/" + t["file"]
    if t["technique"] == "benign":
        return Activity(name, capture, frozenset())
    ids = tuple(sorted({str(x).split(".")[0] for x in t["attack"]}))
    return Activity(name, capture, frozenset({Attack(t["detector"], t.get("attacker", "?"), t["victim"], ids)}))


SSH_GUESSING = Attack("bruteforce", "192.168.56.1", "192.168.56.103", ("T1110",))
ACTIVITIES = [
    *(_recorded(t) for t in [*RECORDED["recorded"], *RECORDED.get("distributed", [])]),
    Activity("ssh-bruteforce", "shared:pcaps/sshguess.pcap", frozenset({SSH_GUESSING}),
             ("scripts.policy.protocols.ssh.detect-bruteforcing/notice.log",)),
    Activity("benign-ssh-sessions", "shared:pcaps/ssh.pcap", frozenset(),
             ("scripts.base.protocols.ssh.basic/conn.log", "scripts.base.protocols.ssh.basic/ssh.log")),
    *(_generated(t) for t in GENERATED),
]
# The default run takes these (a TCP and a UDP scan, the brute force, a benign control: under 10 s on a
# quiet machine); the rest are marked slow (about 3 s each on a busy 2-core machine).
FAST = {"nmap-syn", "nmap-udp", "ssh-bruteforce", "benign-ssh-sessions"}

_CONN_LOG_FLAGS = ("conn.log keeps one record per connection with both sides' TCP flags merged (history): a "
                   "{probe} probe answered by the target's RST reads as {probe}+RST, which no probe sends, so "
                   "the probe's own flags are gone")
_NOT_IN_CONN_LOG = "Zeek's conn.log holds TCP, UDP and ICMP connections only"
# (activity, path) -> (the detector families that path misses, NATURE or GAP, why). Everything else agrees.
DIFFERENCES: dict[tuple[str, str], tuple[frozenset[str], str, str]] = {
    **{(name, "zeek"): (frozenset({"portscan"}), NATURE, _CONN_LOG_FLAGS.format(probe=probe))
       for name, probe in [("nmap-fin", "FIN"), ("nmap-null", "NULL (no flags)"), ("nmap-xmas", "FIN+PSH+URG"),
                           ("nmap-ack", "bare ACK"), ("nmap-window", "bare ACK"), ("nmap-maimon", "FIN+ACK")]},
    ("nmap-sctp-init", "flows"): (
        frozenset({"portscan"}), NATURE,
        ("softflowd 1.1.0 keys SCTP flows by address and protocol only (no ports): the 200 INIT probes "
         "become one flow each way, so no port is seen")),
    ("nmap-sctp-init", "zeek"): (frozenset({"portscan"}), NATURE, _NOT_IN_CONN_LOG),
    ("nmap-ipproto", "zeek"): (
        frozenset({"portscan"}), NATURE,
        (_NOT_IN_CONN_LOG + ": the probes of other IP protocols are not in it, and the protocol unreachables "
         "that answer them are ICMP records quoting nothing")),
    ("nmap-sweep-arp", "flows"): (frozenset({"sweep"}), NATURE, "NetFlow and IPFIX carry IP flows only, no ARP"),
    ("nmap-sweep-arp", "zeek"): (frozenset({"sweep"}), NATURE, "Zeek's conn.log carries no ARP"),
    ("generated-unicornscan-udp-unreachables", "flows"): (
        frozenset({"portscan"}), NATURE,
        ("the scan is seen only by the ICMP port unreachables; a flow record keeps ICMP type and code, not the "
         "UDP port each unreachable quotes, and softflowd folds all 300 into one flow")),
    ("generated-unicornscan-udp-unreachables", "zeek"): (
        frozenset({"portscan"}), NATURE,
        ("the scan is seen only by the ICMP port unreachables; conn.log logs them as ICMP connections (type 3, "
         "code 3) without the UDP port each quotes")),
}
# (activity, path) -> (the detector families that path wrongly adds on a benign control, GAP, why).
FALSE_ALARMS: dict[tuple[str, str], tuple[frozenset[str], str, str]] = {}
# (activity, path) -> (NetFlow versions, why) where the path reports one attack as two findings.
SPLITS: dict[tuple[str, str], tuple[tuple[int, ...], str]] = {}


def _zeek_logs(activity: Activity, pcap: Path, tmp: Path) -> list[list[Path]]:
    """The Zeek inputs of one activity: [Zeek's own logs], or [derived TSV conn.log], [derived JSON conn.log]."""
    if activity.zeek_own:
        return [[unmask(SHARED / ZEEK_BASE / log, pcap, tmp / log.replace("/", "-")) for log in activity.zeek_own]]
    rows = derived_conn_rows(pcap)
    tsv, js = tmp / "conn.log", tmp / "conn.json.log"
    tsv.write_bytes(tsv_log("conn", rows))
    js.write_bytes(json_log(rows))
    return [[tsv], [js]] if rows else [[tsv]]  # a JSON log of no rows is an empty file, which replay refuses


def _show(findings: list[Finding]) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    return [(f.title, f.entities, f.attributes) for f in findings]


def _agrees(found: set[Attack], packets: set[Attack], name: str, path: str) -> bool:
    """`found` is what the packets found, less the families the path misses, plus its known false alarms."""
    missed = DIFFERENCES.get((name, path), (frozenset(), "", ""))[0]
    wrong = FALSE_ALARMS.get((name, path), (frozenset(), "", ""))[0]
    extra = found - packets
    if wrong and not extra:
        return False  # the false alarm is gone: drop its row
    return ({a for a in found if a not in extra} == {a for a in packets if a.family not in missed}
            and all(a.family in wrong for a in extra))


def _one_finding_each(findings: list[Finding], name: str, path: str, version: int = 0) -> bool:
    """Each attack is one finding, except where SPLITS says the path splits it."""
    split = max(Counter(attack(f) for f in findings).values(), default=1) > 1
    return split == (version in SPLITS.get((name, path), ((), ""))[0])


def _marks(a: Activity) -> list[pytest.MarkDecorator]:
    return ([] if a.name in FAST else [pytest.mark.slow]) + ([pytest.mark.shared] if a.capture.startswith("shared:") else [])


HINT = "if the path now agrees where a row of DIFFERENCES, FALSE_ALARMS or SPLITS says it does not, drop the row"


@pytest.mark.parametrize("activity", [pytest.param(a, id=a.name, marks=_marks(a)) for a in ACTIVITIES])
def test_three_paths_find_the_same_attacks(activity: Activity, tmp_path: Path) -> None:
    if SOFTFLOWD is None:
        pytest.skip("softflowd not installed (apt-get install softflowd): the flow path needs a real exporter")
    pcap = activity.pcap()

    packet_findings = replay_findings([pcap], tmp_path / "packets.db", _clock)
    packets = attacks(packet_findings)
    assert packets == activity.truth | activity.also, _show(packet_findings)  # the packet path is right to begin with
    assert _one_finding_each(packet_findings, activity.name, "packets"), _show(packet_findings)

    for version in FLOW_VERSIONS:
        run = flow_findings(pcap, version, tmp_path, _clock)
        assert len(run.events) == run.exported, (version, run.counters)  # all of it arrived (none for ARP)
        assert run.counters.get("skipped", 0) == run.counters.get("errors", 0) == 0, (version, run.counters)
        assert _agrees(attacks(run.findings), packets, activity.name, "flows"), (HINT, version, _show(run.findings))
        assert _one_finding_each(run.findings, activity.name, "flows", version), (HINT, version, _show(run.findings))

    for i, logs in enumerate(_zeek_logs(activity, pcap, tmp_path)):
        zeek_findings = replay_findings(logs, tmp_path / f"zeek-{i}.db", _clock)
        what = (HINT, [p.name for p in logs], _show(zeek_findings))
        assert _agrees(attacks(zeek_findings), packets, activity.name, "zeek"), what
        assert _one_finding_each(zeek_findings, activity.name, "zeek"), what


def test_every_expected_difference_names_a_real_activity_and_a_reason() -> None:
    """The tables of expected differences stay honest: known activities and paths, families the truth names."""
    names = {a.name: a for a in ACTIVITIES}
    for (name, path), (families, kind, why) in DIFFERENCES.items():
        assert name in names and path in ("flows", "zeek") and kind in (NATURE, GAP) and len(why) > 20
        assert families and families <= {a.family for a in names[name].truth}, (name, families)
    for (name, path), (families, kind, why) in FALSE_ALARMS.items():
        assert name in names and path in ("flows", "zeek") and kind == GAP and len(why) > 20
        assert families and not names[name].truth, name  # a false alarm is judged on a benign control only
    for (name, path), (versions, why) in SPLITS.items():
        assert name in names and path == "flows" and set(versions) <= set(FLOW_VERSIONS) and len(why) > 20


@pytest.mark.shared
def test_derived_udp_rows_match_zeeks_own_on_the_same_capture() -> None:
    """The UDP rows the derivation adds are those Zeek itself wrote for ssh.pcap (its only non-TCP rows)."""
    if not SHARED.is_dir():
        pytest.skip(f"shared telemetry not found at {SHARED}: this test needs Zeek's own conn.log in ../shared")
    log = SHARED / ZEEK_BASE / "scripts.base.protocols.ssh.basic/conn.log"
    fields: list[str] = []
    zeek = []
    for line in log.read_text().splitlines():
        if line.startswith("#fields\t"):
            fields = line.split("\t")[1:]
        elif not line.startswith("#") and "\tudp\t" in line:
            zeek.append(dict(zip(fields, line.split("\t"), strict=True)))
    keys = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "duration", "orig_bytes", "conn_state", "history",
            "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes")
    derived = [r for r in derived_conn_rows(SHARED / "pcaps/ssh.pcap") if r["proto"] == "udp"]
    assert len(zeek) == 2
    assert sorted(tuple(r[k] for k in keys) for r in zeek) == sorted(
        tuple("-" if r[k] is None else str(r[k]) for k in keys) for r in derived)

