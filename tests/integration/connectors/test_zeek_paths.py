"""The Zeek path finds what the packet path finds on the same recorded activity, through `replay` (as the CLI
runs it) and through a followed file. Zeek's logs are its own btest baselines in ../shared/telemetry, made
from the captures beside them; their masked times are put back from those captures (support.zeek_samples)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support.zeek_samples import conn_rows_from_packets, unmask
from support.zeek_writer import json_log, tsv_log

from watchstander.agent.app.replay import replay
from watchstander.agent.app.wiring import App
from watchstander.agent.clock import Clock
from watchstander.agent.config.model import AgentConfig
from watchstander.agent.daemon.follow import FollowedFile
from watchstander.agent.daemon.sources import Sink
from watchstander.agent.models import Finding
from watchstander.agent.store.schema import open_store
from watchstander.connectors.events import ACK, NETWORK, SYN, Event
from watchstander.connectors.packets import read_packets
from watchstander.connectors.zeek import read_zeek

pytestmark = [pytest.mark.integration, pytest.mark.shared]

BASE = "ids/zeek-expected"


def _findings(paths: list[Path], tmp_path: Path, clock: Clock) -> list[Finding]:
    store = open_store(f"sqlite:///{tmp_path / f'{paths[0].stem}-{len(paths)}.db'}")
    try:
        report = replay(App(AgentConfig(), store, clock), paths, "test")
    finally:
        store.close()
    assert sum(report.detector_failures.values()) == 0
    return [f for inc in report.incidents for f in inc.findings.values()]


@pytest.mark.parametrize(("pcap", "notice", "attacker", "victim"), [
    ("sshguess.pcap", "scripts.policy.protocols.ssh.detect-bruteforcing/notice.log", "192.168.56.1", "192.168.56.103"),
    ("bruteforce.pcap", "scripts.policy.protocols.ftp.bruteforce/notice.log", "192.168.56.1", None),
])
def test_zeek_notice_names_the_attack_the_packets_show(  # type: ignore[no-untyped-def]
    shared_telemetry: Path, tmp_path: Path, clock, pcap: str, notice: str, attacker: str, victim: str | None,
) -> None:
    packets = _findings([shared_telemetry / "pcaps" / pcap], tmp_path, clock)
    log = unmask(shared_telemetry / BASE / notice, shared_telemetry / "pcaps" / pcap, tmp_path / "notice.log")
    zeek = _findings([log], tmp_path, clock)
    guessing = [f for f in packets if f.detector == "bruteforce" and f.entities.get("attacker") == attacker]
    assert guessing, [(f.detector, f.entities) for f in packets]
    (alert,) = [f for f in zeek if f.detector == "ids"]
    assert alert.entities["attacker"] == attacker
    # Zeek's FTP notice names no server; its SSH notice samples one, the same the packets show.
    assert alert.entities["victim"] == (victim or "?")
    if victim:
        assert guessing[0].entities["victim"] == victim
    assert {t.split(".")[0] for t in alert.techniques} == {t.split(".")[0] for t in guessing[0].techniques} == {"T1110"}
    assert alert.severity == "medium"


def test_benign_ssh_sessions_raise_no_attack_on_either_path(shared_telemetry: Path, tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    pcap = shared_telemetry / "pcaps/ssh.pcap"
    logs = [unmask(shared_telemetry / BASE / f"scripts.base.protocols.ssh.basic/{n}", pcap, tmp_path / n)
            for n in ("conn.log", "ssh.log")]
    # Other detectors (new SSH use between internal hosts) may speak on either path; these must not.
    quiet = {"bruteforce", "portscan", "synflood", "sweep", "ids"}
    assert [f.title for f in _findings([pcap], tmp_path, clock) if f.detector in quiet] == []
    assert [f.title for f in _findings(logs, tmp_path, clock) if f.detector in quiet] == []


def test_conn_log_holds_the_connections_the_packets_open(shared_telemetry: Path, tmp_path: Path) -> None:
    """Every TCP connection Zeek logged starts with a SYN in the capture, at the time Zeek gives it."""
    pcap = shared_telemetry / "pcaps/ssh.pcap"
    log = unmask(shared_telemetry / BASE / "scripts.base.protocols.ssh.basic/conn.log", pcap, tmp_path / "conn.log")
    syns: dict[tuple[str | None, int | None, str | None, int | None], float] = {}
    for e in read_packets(pcap):
        if e.kind == NETWORK and e.proto == "tcp" and e.flags & (SYN | ACK) == SYN:
            syns.setdefault((e.src, e.sport, e.dst, e.dport), e.time)  # the first SYN, not a retransmission
    flows = [e for e in read_zeek(log) if e.proto == "tcp"]
    with_syn = [e for e in flows if e.flags & SYN]
    assert len(flows) == 23 and len(with_syn) == 22  # one connection Zeek saw only from its middle (history DaFfA)
    for e in with_syn:
        assert abs(syns[(e.src, e.sport, e.dst, e.dport)] - e.time) < 1e-3


ROW = {"ts": 1764240000.0, "uid": "CF1", "id.orig_h": "203.0.113.9", "id.orig_p": 40000, "id.resp_h": "10.0.0.25",
       "id.resp_p": 22, "proto": "tcp", "conn_state": "S0", "history": "S", "orig_pkts": 1, "orig_ip_bytes": 60,
       "resp_pkts": 0, "resp_ip_bytes": 0}


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


@pytest.mark.parametrize("form", ["tsv", "json"])
def test_followed_zeek_log_is_read_as_it_grows(tmp_path: Path, clock: Clock, form: str) -> None:
    log = tmp_path / "conn.log"
    log.write_bytes(b"")
    seen: list[Event] = []
    follower = FollowedFile(log, clock, interval=0.02)
    rows = [{**ROW, "id.resp_p": p, "uid": f"C{p}"} for p in range(20, 25)]
    data = tsv_log("conn", rows) if form == "tsv" else json_log(rows)

    async def scenario() -> None:
        await follower.start(Sink(asyncio.get_running_loop(), seen.extend))
        while follower._fh is None:
            await asyncio.sleep(0.01)
        _append(log, data[: len(data) // 2])
        await asyncio.sleep(0.1)
        _append(log, data[len(data) // 2:])
        while follower._pos != log.stat().st_size:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await follower.stop()

    asyncio.run(scenario())
    assert [(e.source, e.dport, e.flags) for e in seen] == [("zeek:conn", p, SYN) for p in range(20, 25)]
    assert follower.skips.total == 0


def test_followed_tsv_log_picked_up_mid_file_reads_its_header_from_the_top(tmp_path: Path, clock: Clock) -> None:
    """A TSV log first seen with content is followed from its end: the follower primes the decoder with the
    file's header lines, so the rows appended after are read into the right columns."""
    log = tmp_path / "conn.log"
    log.write_bytes(tsv_log("conn", [ROW]).replace(b"#close\t2026-01-01-01-00-00\n", b""))
    seen: list[Event] = []
    follower = FollowedFile(log, clock, interval=0.02)

    async def scenario() -> None:
        await follower.start(Sink(asyncio.get_running_loop(), seen.extend))
        while follower._fh is None:
            await asyncio.sleep(0.01)
        _append(log, tsv_log("conn", [ROW]).split(b"\n")[8] + b"\n")
        while follower._pos != log.stat().st_size:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await follower.stop()

    asyncio.run(scenario())
    assert len(seen) == 1 and seen[0].attrs and seen[0].attrs["flow"] is True
    assert not follower.skips.counts


def test_dns_log_of_a_tunnel_finds_what_the_packets_find(shared_telemetry: Path, tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    """No Zeek dns.log of a tunnel is in ../shared and Zeek is not installable here, so the dns.log is written
    from the iodine capture's own queries, one row per query as Zeek logs them; both paths must agree."""
    pcap = shared_telemetry / "pcaps/dns-tunnel-iodine.pcap"
    queries = [e for e in read_packets(pcap) if e.kind == "dns_activity" and e.attrs and not e.attrs["response"]]
    rows = [{"ts": e.time, "uid": f"C{i}", "id.orig_h": e.src, "id.orig_p": e.sport, "id.resp_h": e.dst,
             "id.resp_p": e.dport, "proto": "udp", "trans_id": i, "query": e.attrs["qname"], "qclass": 1,
             "qtype": e.attrs["qtype"], "rcode": None, "answers": [], "rejected": False}
            for i, e in enumerate(queries) if e.attrs is not None]
    log = tmp_path / "dns.log"
    log.write_bytes(tsv_log("dns", rows))

    def tunnels(paths: list[Path]) -> set[tuple[str | None, str | None, str | None]]:
        return {(f.entities.get("attacker"), f.entities.get("victim"), f.entities.get("domain"))
                for f in _findings(paths, tmp_path, clock) if f.detector == "dnstunnel"}

    assert len(rows) == 222
    assert tunnels([log]) == tunnels([pcap]) == {("10.0.2.30", "10.0.2.20", "pirate.sea")}


@pytest.mark.parametrize("pcap", ["synscan.pcapng", "tcp_0_1000_20190821.pcap"])
def test_conn_log_of_a_scan_finds_what_the_packets_find(shared_telemetry: Path, tmp_path: Path, clock, pcap: str) -> None:  # type: ignore[no-untyped-def]
    """No Zeek conn.log of a scan is in ../shared: the rows are derived from the capture with Zeek's history and
    state rules (support.zeek_samples.conn_rows_from_packets); the port-scan finding must be the same."""
    capture = shared_telemetry / "pcaps" / pcap
    rows = conn_rows_from_packets(capture)
    log = tmp_path / "conn.log"
    log.write_bytes(tsv_log("conn", rows))

    def scans(paths: list[Path]) -> set[tuple[str | None, str | None]]:
        return {(f.entities.get("attacker"), f.entities.get("victim"))
                for f in _findings(paths, tmp_path, clock) if f.detector == "portscan"}

    assert len(rows) >= 1000 and sum(r["conn_state"] in ("S0", "REJ") for r in rows) >= 990
    found = scans([log])
    assert found and found == scans([capture])


def test_derived_conn_states_match_zeeks_own_on_the_same_capture(shared_telemetry: Path, tmp_path: Path) -> None:
    """The derivation the scan test relies on gives the state Zeek itself wrote for every TCP connection of ssh.pcap."""
    pcap = shared_telemetry / "pcaps/ssh.pcap"
    log = unmask(shared_telemetry / BASE / "scripts.base.protocols.ssh.basic/conn.log", pcap, tmp_path / "conn.log")
    zeek = {(e.src, e.sport, e.dst, e.dport): (e.attrs or {})["conn_state"] for e in read_zeek(log) if e.proto == "tcp"}
    derived = {(r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]): r["conn_state"]
               for r in conn_rows_from_packets(pcap)}
    assert len(zeek) == 23 and derived == zeek
