"""The three ways one recorded activity reaches the detectors, for tests that compare what each finds.

- packets: the capture replayed as `watchstander replay` runs it (agent.app.replay);
- flows: Debian's softflowd reads the capture and exports it as NetFlow v5, v9 or IPFIX to the daemon's
  UDP collector (agent.daemon.netflow.NetflowUdp) bound on loopback; its flow events go through the
  detection pipeline in the order they arrived, as in the daemon;
- zeek: Zeek logs replayed through the real reader (connectors/zeek.py, by way of `replay`): Zeek's own
  logs where ../shared holds them for the capture, else conn.log rows derived from the capture
  (`derived_conn_rows`) written in Zeek's TSV and JSON forms (support.zeek_writer).

A finding is compared as an `Attack`: detector family, attacker, victim and base ATT&CK technique ids.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from scapy.layers.inet import ICMP, IP, UDP
from scapy.utils import PcapReader

from support.zeek_samples import conn_rows_from_packets
from watchstander.agent.app.replay import replay
from watchstander.agent.app.wiring import App
from watchstander.agent.config.model import AgentConfig
from watchstander.agent.config.netflow import FlowIntake
from watchstander.agent.daemon.netflow import NetflowUdp
from watchstander.agent.daemon.sources import Sink
from watchstander.agent.detection.pipeline import Pipeline
from watchstander.agent.models import Finding
from watchstander.agent.store.schema import open_store
from watchstander.connectors.events import Event

Clock = Callable[[], datetime]
ConnKey = tuple[str, str, str, int, int]  # proto, originator, responder, orig_p, resp_p

SOFTFLOWD = shutil.which("softflowd") or ("/usr/sbin/softflowd" if Path("/usr/sbin/softflowd").exists() else None)
# An IDS alert names its attack by ATT&CK technique, not by detector: the family it stands for.
IDS_FAMILIES = {"T1110": "bruteforce", "T1046": "portscan", "T1018": "sweep"}
# ICMP replies Zeek files under the request's connection (request type -> reply type).
ICMP_REPLIES = {8: 0, 13: 14, 15: 16, 17: 18}


class Attack(NamedTuple):
    """What the paths must agree on: detector family, attacker, victim, base ATT&CK technique ids."""

    family: str
    attacker: str
    victim: str
    techniques: tuple[str, ...]


def attack(f: Finding) -> Attack:
    """The attack a finding names; a horizontal scan's victim is the network its targets span."""
    techniques = tuple(sorted({t.split(".")[0] for t in f.techniques}))
    family = f.detector
    if family == "ids":
        family = next((IDS_FAMILIES[t] for t in techniques if t in IDS_FAMILIES), "ids")
    victim = f.entities.get("victim") or "?"
    if f.attributes.get("shape") == "horizontal":
        victim = str(f.attributes.get("targets"))
    return Attack(family, f.entities.get("attacker") or "?", victim, techniques)


def attacks(findings: Iterable[Finding]) -> set[Attack]:
    """The distinct attacks among `findings` (one attack reported twice counts once)."""
    return {attack(f) for f in findings}


def replay_findings(files: list[Path], db: Path, clock: Clock) -> list[Finding]:
    """Findings of a replay of `files` as the CLI runs it (detection, correlation, triage, store)."""
    store = open_store(f"sqlite:///{db}")
    try:
        report = replay(App(AgentConfig(), store, clock), files, "three-paths")
    finally:
        store.close()
    assert sum(report.detector_failures.values()) == 0, report.detector_failures
    return [f for inc in report.incidents for f in inc.findings.values()]


# -- flows -----------------------------------------------------------------------------------------


class FlowRun(NamedTuple):
    """What one softflowd export delivered to the collector, and what the detectors found in it."""

    findings: list[Finding]
    events: list[Event]
    exported: int
    counters: dict[str, int]


def softflowd(pcap: Path, port: int, version: int, workdir: Path) -> int:
    """softflowd over `pcap`, exporting to 127.0.0.1:port; the number of records it says it exported.

    -r reads the file; at its end softflowd expires every flow it still holds and exports it, so no
    timeout (-t maxlife=...) is needed; -a keeps the capture's times in the records; -d stays in the
    foreground; -c none: with a control socket, softflowd 1.1.0 reading a file can block in accept().
    """
    assert SOFTFLOWD is not None
    out = subprocess.run([SOFTFLOWD, "-a", "-r", str(pcap), "-n", f"127.0.0.1:{port}", "-v", str(version), "-d",
                          "-c", "none", "-p", str(workdir / f"softflowd-v{version}.pid")],
                         capture_output=True, text=True, timeout=60, check=True)
    m = re.search(r"Flows exported: \d+ \((\d+) records\)", out.stdout + out.stderr)
    assert m, (out.stdout + out.stderr)[-2000:]
    return int(m.group(1))


async def _collect(pcap: Path, version: int, workdir: Path, clock: Clock) -> tuple[list[Event], int, dict[str, int]]:
    events: list[Event] = []
    source = NetflowUdp("127.0.0.1:0", clock, FlowIntake())
    await source.start(Sink(asyncio.get_running_loop(), events.extend))
    try:
        assert source.bound is not None
        exported = await asyncio.to_thread(softflowd, pcap, source.bound[1], version, workdir)
        deadline = time.monotonic() + 10
        while len(events) < exported and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        await source.stop()
    return events, exported, dict(source.counters)


def flow_findings(pcap: Path, version: int, workdir: Path, clock: Clock) -> FlowRun:
    """Export `pcap` with softflowd to a collector on loopback; detect on the flows as they arrived."""
    events, exported, counters = asyncio.run(_collect(pcap, version, workdir, clock))
    pipeline = Pipeline(AgentConfig().detectors)
    pipeline.feed_all(events)
    assert not pipeline.failures, pipeline.failures
    return FlowRun(pipeline.findings, events, exported, counters)


# -- Zeek ------------------------------------------------------------------------------------------


@dataclass
class _Conn:
    """One UDP or ICMP connection as Zeek counts it: each side's packets and sizes."""

    first: float
    last: float
    history: str = ""
    pkts: list[int] = field(default_factory=lambda: [0, 0])  # [originator, responder]
    ip_bytes: list[int] = field(default_factory=lambda: [0, 0])
    payload: list[int] = field(default_factory=lambda: [0, 0])


def _udp_icmp_key(ip: Any, conns: dict[ConnKey, _Conn]) -> tuple[ConnKey, ConnKey] | None:
    """(this packet's connection key, the key its reverse direction would have), or None if not UDP/ICMP."""
    if UDP in ip:
        sport, dport = int(ip[UDP].sport), int(ip[UDP].dport)
        return ("udp", ip.src, ip.dst, sport, dport), ("udp", ip.dst, ip.src, dport, sport)
    if ICMP in ip and ip.proto == 1:
        kind, code = int(ip[ICMP].type), int(ip[ICMP].code)
        request = next((t for t, r in ICMP_REPLIES.items() if r == kind), None)
        if request is not None and ("icmp", ip.dst, ip.src, request, 0) in conns:
            kind, code = request, 0  # an answer: Zeek files it under the request's connection
        return ("icmp", ip.src, ip.dst, kind, code), ("icmp", ip.dst, ip.src, kind, code)
    return None


def derived_conn_rows(pcap: Path) -> list[dict[str, object]]:
    """conn.log rows for the TCP, UDP and ICMP connections of `pcap`, as Zeek would log them.

    TCP comes from support.zeek_samples.conn_rows_from_packets (Zeek's history and state rules).
    UDP: the originator is the first sender; state S0 with no reply, SF with one, history D/d.
    ICMP: one connection per (source, type, destination, code) with the type and code as Zeek's
    orig_p and resp_p; a reply joins its request's connection; state OTH. Zeek logs nothing else in
    conn.log (no ARP, SCTP or other IP protocols), and neither does this.
    """
    conns: dict[ConnKey, _Conn] = {}
    with PcapReader(str(pcap)) as reader:
        for pkt in reader:
            if IP not in pkt or pkt[IP].frag:
                continue
            ip, t = pkt[IP], float(pkt.time)
            keys = _udp_icmp_key(ip, conns)
            if keys is None:
                continue
            key, back = keys
            side = 1 if key not in conns and back in conns else 0
            conn = conns[back] if side else conns.setdefault(key, _Conn(t, t))
            size = int(ip.len or len(ip))
            conn.pkts[side] += 1
            conn.ip_bytes[side] += size
            conn.payload[side] += max(size - 28, 0)  # IPv4 and UDP (or ICMP) headers
            letter = "Dd"[side]
            if key[0] == "udp" and size > 28 and letter not in conn.history:
                conn.history += letter
            conn.last = t
    rows: list[dict[str, object]] = list(conn_rows_from_packets(pcap))
    for i, ((proto, src, dst, sport, dport), c) in enumerate(conns.items()):
        state = "OTH" if proto == "icmp" else "SF" if c.pkts[1] else "S0"
        lasted = c.last > c.first  # Zeek leaves duration and payload sizes unset for a connection of no duration
        rows.append({"ts": c.first, "uid": f"U{i}", "id.orig_h": src, "id.orig_p": sport, "id.resp_h": dst,
                     "id.resp_p": dport, "proto": proto, "duration": c.last - c.first if lasted else None,
                     "orig_bytes": c.payload[0] if lasted else None, "resp_bytes": c.payload[1] if lasted else None,
                     "conn_state": state, "history": c.history or None, "orig_pkts": c.pkts[0],
                     "orig_ip_bytes": c.ip_bytes[0], "resp_pkts": c.pkts[1], "resp_ip_bytes": c.ip_bytes[1]})
    rows.sort(key=lambda r: float(str(r["ts"])))
    return rows
