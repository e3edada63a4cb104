"""Real exporters: Debian's softflowd exports a capture as NetFlow v5, v9 and IPFIX to the daemon's collector.

softflowd reads a pcap (generated here with scapy: a TCP SYN scan, UDP probes, an ICMP sweep and IPv6
connections) and exports its flows to nfcapd on loopback, which repeats every datagram to our
collector (the daemon's NetflowUdp source) and stores its own reading. Every record softflowd says it
exported must arrive as one Event, and the flows must be the ones nfdump reads from nfcapd's file.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.config.netflow import FlowIntake
from watchstander.agent.daemon.netflow import NetflowUdp
from watchstander.agent.daemon.sources import Sink
from watchstander.connectors.events import Event
from watchstander.connectors.formats import open_file
from watchstander.connectors.netflow_pcap import NETFLOW
from watchstander.connectors.skips import SkipCounter

pytestmark = [pytest.mark.integration]

SOFTFLOWD = shutil.which("softflowd") or ("/usr/sbin/softflowd" if Path("/usr/sbin/softflowd").exists() else None)
NFCAPD, NFDUMP, TCPDUMP = shutil.which("nfcapd"), shutil.which("nfdump"), shutil.which("tcpdump")
START = time.time() - 600  # the capture's packets, ten minutes ago (softflowd -a keeps their times)
SCANNER, TARGET = "10.1.0.5", "10.1.0.9"


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A capture: SYN scan of 120 ports, 15 UDP probes, an ICMP echo sweep of 20 hosts, 4 IPv6 connections."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    pkts: list[Any] = []
    for port in range(1, 121):
        pkts.append(Ether() / IP(src=SCANNER, dst=TARGET) / TCP(sport=40000, dport=port, flags="S"))
        pkts.append(Ether() / IP(src=TARGET, dst=SCANNER) / TCP(sport=port, dport=40000, flags="RA"))
    for port in range(50, 65):
        pkts.append(Ether() / IP(src=SCANNER, dst=TARGET) / UDP(sport=41000, dport=port))
    for host in range(20, 40):
        pkts.append(Ether() / IP(src=SCANNER, dst=f"10.1.0.{host}") / ICMP(type=8, code=0))
    for i in range(4):
        pkts.append(Ether() / IPv6(src="2001:db8::5", dst="2001:db8::9") / TCP(sport=50000 + i, dport=443, flags="S"))
    for i, p in enumerate(pkts):
        p.time = START + i * 0.01
    path = tmp_path_factory.mktemp("netflow") / "traffic.pcap"
    wrpcap(str(path), pkts)
    return path


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _softflowd(pcap: Path, port: int, version: int, workdir: Path) -> int:
    """Run softflowd over `pcap`, exporting to 127.0.0.1:port; return the records it says it exported."""
    assert SOFTFLOWD is not None
    # -c none: with a control socket, softflowd 1.1.0 reading a file can block in accept() forever.
    out = subprocess.run([SOFTFLOWD, "-a", "-r", str(pcap), "-n", f"127.0.0.1:{port}", "-v", str(version), "-D",
                          "-c", "none", "-p", str(workdir / "softflowd.pid")],
                         capture_output=True, text=True, timeout=60, check=True)
    m = re.search(r"Flows exported: \d+ \((\d+) records\)", out.stdout + out.stderr)
    assert m, out.stdout[-2000:]
    return int(m.group(1))


def _nfcapd(port: int, store: Path, repeat_to: int) -> subprocess.Popen[bytes]:
    """nfcapd on 127.0.0.1:port, storing into `store` and repeating every datagram to 127.0.0.1:repeat_to."""
    assert NFCAPD is not None
    return subprocess.Popen([NFCAPD, "-b", "127.0.0.1", "-p", str(port), "-w", str(store), "-t", "3600",
                             "-R", f"127.0.0.1/{repeat_to}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _collect(pcap: Path, version: int, workdir: Path) -> tuple[NetflowUdp, list[Event], int, Path | None]:
    events: list[Event] = []
    source = NetflowUdp("127.0.0.1:0", _now, FlowIntake())
    await source.start(Sink(asyncio.get_running_loop(), events.extend))
    nfcapd: subprocess.Popen[bytes] | None = None
    store: Path | None = None
    try:
        assert source.bound is not None
        target = source.bound[1]
        if NFCAPD is not None:
            store = workdir / f"nfcapd-v{version}"
            store.mkdir()
            target = _free_udp_port()
            nfcapd = await asyncio.to_thread(_nfcapd, target, store, source.bound[1])
            await asyncio.sleep(1.0)  # nfcapd binds
        exported = await asyncio.to_thread(_softflowd, pcap, target, version, workdir)
        deadline = time.monotonic() + 10
        while len(events) < exported and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        if nfcapd is not None:
            nfcapd.terminate()
            await asyncio.to_thread(nfcapd.wait, 10)
        await source.stop()
    return source, events, exported, store


def _nfdump_flows(store: Path) -> Counter[tuple[str, str, int, int, str]]:
    assert NFDUMP is not None
    out = subprocess.run([NFDUMP, "-R", str(store), "-q", "-N", "-o", "fmt:%sa|%da|%sp|%dp|%pr"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    flows: Counter[tuple[str, str, int, int, str]] = Counter()
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("|")]
        proto = {"6": "tcp", "17": "udp", "TCP": "tcp", "UDP": "udp"}.get(parts[-1])
        if len(parts) == 5 and proto is not None:
            flows[(parts[0], parts[1], int(parts[2]), int(float(parts[3])), proto)] += 1
    return flows


@pytest.mark.skipif(SOFTFLOWD is None, reason="softflowd not installed (apt-get install softflowd)")
@pytest.mark.parametrize("version", [5, 9, 10])
def test_softflowd_export_arrives_whole(traffic: Path, tmp_path: Path, version: int) -> None:
    source, events, exported, store = asyncio.run(_collect(traffic, version, tmp_path))
    assert exported > 0
    assert len(events) == exported, (source.counters, source.skips.counts)
    assert source.counters["flows"] == exported and source.counters["skipped"] == 0
    assert source.counters["lost"] == 0 and source.counters["kernel_drops"] == 0
    scan = {ev.dport for ev in events if ev.src == SCANNER and ev.dst == TARGET and ev.proto == "tcp"}
    assert scan == set(range(1, 121))
    assert all(ev.flags == 0x02 for ev in events if ev.src == SCANNER and ev.proto == "tcp")
    udp = {ev.dport for ev in events if ev.src == SCANNER and ev.proto == "udp"}
    assert udp == set(range(50, 65))
    sweep = [ev for ev in events if ev.proto == "icmp"]
    assert len(sweep) == 20 and {(ev.sport, ev.dport) for ev in sweep} == {(0, 8 * 256)}
    if version != 5:  # v5 carries IPv4 only
        assert sum(1 for ev in events if ev.src == "2001:db8::5") == 4
    for ev in events:  # softflowd -a keeps the capture's times
        assert START - 1 <= ev.time <= START + 10, ev
        assert ev.attrs is not None and ev.attrs["exporter"] == "127.0.0.1" and ev.attrs["packets"] >= 1
    if store is not None and NFDUMP is not None:
        ours = Counter((ev.src, ev.dst, ev.sport, ev.dport, ev.proto) for ev in events if ev.proto in ("tcp", "udp"))
        assert ours == _nfdump_flows(store)


@pytest.mark.skipif(SOFTFLOWD is None or TCPDUMP is None, reason="softflowd and tcpdump needed")
def test_captured_export_replays_like_the_live_collector(traffic: Path, tmp_path: Path) -> None:
    """The export datagrams captured by tcpdump on loopback replay through the file path to the same flows."""
    port = _free_udp_port()
    capture = tmp_path / "export.pcap"
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # something listens, so no ICMP port unreachable
    sink.bind(("127.0.0.1", port))
    tcpdump = subprocess.Popen([str(TCPDUMP), "-i", "lo", "-U", "--immediate-mode", "-Z", "root", "-w", str(capture), "udp", "port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while (not capture.exists() or capture.stat().st_size < 24) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the file exists before the capture is live
        exported = _softflowd(traffic, port, 9, tmp_path)
        time.sleep(0.5)
    finally:
        tcpdump.terminate()
        _, err = tcpdump.communicate(timeout=10)
        sink.close()
    assert capture.stat().st_size > 24, err.decode()
    skips = SkipCounter(__import__("logging").getLogger("test"), "export.pcap")
    fmt, events = open_file(capture, _now, skips)
    got = list(events)
    assert fmt == NETFLOW
    assert len(got) == exported and skips.total == 0
    # The detectors read the flows as they read packets: the SYN scan is found (20 pings stay under the
    # sweep threshold).
    from watchstander.agent.config.model import AgentConfig
    from watchstander.agent.detection.pipeline import Pipeline

    pipeline = Pipeline(AgentConfig().detectors)
    pipeline.feed_all(got)
    found = {(f.detector, f.entities.get("src") or f.entities.get("attacker")) for f in pipeline.findings}
    assert any(det == "portscan" and who == SCANNER for det, who in found), pipeline.findings


def test_collector_survives_hostile_datagrams() -> None:
    """Garbage, truncated and unknown-template datagrams are counted; the valid one after them still decodes."""
    import struct as st

    from support.netflow_export import V9_FIELDS_V4, Flow, data_set, template_record, template_set, v9

    now_ms = int(time.time() * 1000)
    f = Flow("10.2.0.1", "10.2.0.2", 1234, 80, 6, 0x12, 3, 180, now_ms - 2000, now_ms - 1000)
    good = v9([template_set([template_record(256, V9_FIELDS_V4)]), data_set(256, V9_FIELDS_V4, [f], now_ms - 60_000)],
              now_ms, 60_000, sequence=0)
    hostile = [b"", b"\x00", b"\x00\x05" + b"\xff" * 30, b"\x00\x09" + b"\x00" * 18 + st.pack("!HH", 300, 2),
               b"\x00\x0a\xff\xff" + b"\x00" * 12, good[:30], v9([data_set(999, V9_FIELDS_V4, [f])], now_ms, 60_000)]
    events: list[Event] = []

    async def main() -> NetflowUdp:
        source = NetflowUdp("127.0.0.1:0", _now, FlowIntake(pending_sets=0))
        await source.start(Sink(asyncio.get_running_loop(), events.extend))
        try:
            assert source.bound is not None
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                for d in [*hostile, good]:
                    tx.sendto(d, source.bound)
            deadline = time.monotonic() + 5
            while not events and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            await source.stop()
        return source

    source = asyncio.run(main())
    assert source.counters["datagrams"] == len(hostile) + 1
    assert len(events) == 1 and events[0].dport == 80 and events[0].source == "netflow:127.0.0.1"
    assert source.counters["skipped"] >= 5 and source.counters["no_template"] == 1 and source.counters["errors"] == 0
