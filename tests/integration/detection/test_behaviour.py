"""Behaviour detectors on real traffic: a beacon and a random client recorded by tcpdump on loopback
(found from the packets and from Debian's softflowd NetFlow export of the same capture), an upload
far above its baseline (found from softflowd's flows; packets carry no length), and the recorded
SNMP captures through the whole detection pipeline."""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.snmp_capture import snmp_events

from watchstander.agent.config.detectors import DetectorsConfig
from watchstander.agent.detection.pipeline import Pipeline
from watchstander.connectors.formats import open_file
from watchstander.connectors.packets import read_packets
from watchstander.connectors.skips import SkipCounter

pytestmark = pytest.mark.integration

SNMP = Path(__file__).resolve().parents[2] / "data" / "captures" / "snmp"
C2, RANDOM_PEER, DROP = "127.0.0.2", "127.0.0.3", "127.0.0.4"
SOFTFLOWD = shutil.which("softflowd") or ("/usr/sbin/softflowd" if Path("/usr/sbin/softflowd").exists() else None)


def capture_skip_reason() -> str | None:
    """Why tcpdump cannot record loopback here, or None."""
    if shutil.which("tcpdump") is None:
        return "needs Debian's tcpdump (apt-get install tcpdump)"
    if os.geteuid() != 0:
        return "recording loopback with tcpdump needs root"
    return None


def listener(address: str) -> Iterator[int]:
    """A TCP server on `address` reading each connection to its end, until the socket closes."""
    srv = socket.create_server((address, 0))
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.settimeout(5)
            while True:
                try:
                    data = conn.recv(1 << 16)
                except OSError:
                    break
                if not data or data.endswith(b"\n"):
                    break
            conn.sendall(b"ok")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        srv.close()


def start_tcpdump(out: Path, bpf: str, snaplen: int = 262144) -> subprocess.Popen[str]:
    """tcpdump writing `bpf`-matching loopback packets to `out`, returned once it is capturing."""
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-s", str(snaplen), "-w", str(out), bpf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert dump.stderr is not None
    dump.stderr.readline()  # "listening on lo"; the filter is attached a moment later
    time.sleep(0.5)
    return dump


def stop_tcpdump(dump: subprocess.Popen[str]) -> None:
    """Stop tcpdump and close its pipe."""
    dump.terminate()
    dump.wait(timeout=10)
    if dump.stderr is not None:
        dump.stderr.close()


def softflowd_export(pcap: Path, workdir: Path) -> tuple[Path, int]:
    """Debian's softflowd reads `pcap` and exports NetFlow v9 on loopback; the export as tcpdump saw it."""
    assert SOFTFLOWD is not None
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a listener, so no port-unreachable noise
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    export = workdir / "export.pcap"
    dump = start_tcpdump(export, f"udp port {port}")
    try:
        out = subprocess.run([SOFTFLOWD, "-a", "-r", str(pcap), "-n", f"127.0.0.1:{port}", "-v", "9", "-D",
                              "-c", "none", "-p", str(workdir / "softflowd.pid")],
                             capture_output=True, text=True, timeout=60, check=True)
        time.sleep(0.5)
    finally:
        stop_tcpdump(dump)
        sink.close()
    m = re.search(r"Flows exported: \d+ \((\d+) records\)", out.stdout + out.stderr)
    assert m, out.stdout[-2000:]
    return export, int(m.group(1))


def connect_at(address: str, port: int, gaps: list[float]) -> None:
    """Open one short connection from 127.0.0.1, then wait each gap and open another."""
    for gap in [0.0, *gaps]:
        time.sleep(gap)
        send(address, port, b"hello")


def send(address: str, port: int, data: bytes) -> None:
    """One connection from 127.0.0.1 carrying `data`, then the server's answer."""
    with socket.create_connection((address, port), source_address=("127.0.0.1", 0)) as conn:
        conn.sendall(data + b"\n")
        conn.recv(16)


@pytest.mark.privileged
@pytest.mark.slow
def test_recorded_beacon_is_found_and_random_client_is_not(tmp_path: Path) -> None:
    reason = capture_skip_reason()
    if reason:
        pytest.skip(reason)
    pcap = tmp_path / "beacon.pcap"
    rng = random.Random(12)
    beacon_gaps = [0.4 * (1 + rng.uniform(-0.2, 0.2)) for _ in range(24)]
    random_gaps = [rng.expovariate(1 / 0.4) for _ in range(24)]
    servers = [listener(C2), listener(RANDOM_PEER)]
    c2_port, peer_port = (next(s) for s in servers)
    dump = start_tcpdump(pcap, f"tcp and (host {C2} or host {RANDOM_PEER})")
    try:
        clients = [threading.Thread(target=connect_at, args=(C2, c2_port, beacon_gaps)),
                   threading.Thread(target=connect_at, args=(RANDOM_PEER, peer_port, random_gaps))]
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=60)
        time.sleep(0.3)
    finally:
        stop_tcpdump(dump)
        for s in servers:
            s.close()
    config = DetectorsConfig.model_validate({"beacon": {
        "internal_networks": ["127.0.0.1/32"], "min_period_s": 0.1, "merge_s": 0.05, "min_span_s": 5}})
    pipeline = Pipeline(config)
    pipeline.feed_all(read_packets(pcap))
    assert not pipeline.failures
    beacons = [f for f in pipeline.findings if f.detector == "beacon"]
    assert [f.entities for f in beacons] == [{"attacker": C2, "victim": "127.0.0.1", "service": f"tcp/{c2_port}"}]
    assert beacons[0].count == 25
    assert 0.3 <= beacons[0].attributes["period_s"] <= 0.5
    assert beacons[0].title == f"Beaconing from 127.0.0.1 to {C2}:{c2_port} every ~0.4 s (25 connections)"

    # The same activity as NetFlow v9 from Debian's softflowd: the same beacon, nothing else.
    if SOFTFLOWD is None:
        pytest.skip("softflowd not installed (apt-get install softflowd): flow half not run")
    export, exported = softflowd_export(pcap, tmp_path)
    skips = SkipCounter(logging.getLogger(__name__), "export.pcap")
    _fmt, flows = open_file(export, lambda: datetime.now(UTC), skips)
    flow_pipeline = Pipeline(config)
    assert flow_pipeline.feed_all(flows) == exported
    assert not flow_pipeline.failures
    from_flows = [f for f in flow_pipeline.findings if f.detector == "beacon"]
    assert [f.entities for f in from_flows] == [f.entities for f in beacons]
    assert from_flows[0].count == 25


def test_snmp_captures_through_the_pipeline_with_every_detector() -> None:
    """The packet reader decodes SNMP itself (and agrees with scapy's reading of every payload)."""
    pipeline = Pipeline(DetectorsConfig())
    for name in ("walk", "guess", "set", "sweep"):
        events = list(read_packets(SNMP / f"{name}.pcap"))
        assert [e.attrs for e in events] == [e.attrs for e in snmp_events(SNMP / f"{name}.pcap")]
        pipeline.feed_all(events)
    assert not pipeline.failures
    mine = sorted((f.detector, f.techniques[0]) for f in pipeline.findings if f.detector == "snmp_abuse")
    assert mine == [("snmp_abuse", "T1046"), ("snmp_abuse", "T1110.001"), ("snmp_abuse", "T1602.001")]


@pytest.mark.privileged
@pytest.mark.slow
def test_recorded_upload_above_baseline_is_found_from_softflowd_flows(tmp_path: Path) -> None:
    reason = capture_skip_reason() or (None if SOFTFLOWD else "needs Debian's softflowd")
    if reason:
        pytest.skip(reason)
    pcap = tmp_path / "upload.pcap"
    gen = listener(DROP)
    port = next(gen)
    dump = start_tcpdump(pcap, f"tcp and host {DROP}", snaplen=96)
    try:
        for _ in range(8):  # the baseline: about 20 kB a second
            send(DROP, port, b"x" * 20_000)
            time.sleep(1.0)
        send(DROP, port, b"y" * 6_000_000)  # then 6 MB in one connection
        time.sleep(1.2)
        send(DROP, port, b"x" * 20_000)
        time.sleep(0.3)
    finally:
        stop_tcpdump(dump)
        gen.close()
    config = DetectorsConfig.model_validate({"exfil": {
        "internal_networks": ["127.0.0.1/32"], "window_s": 1, "warmup_windows": 4, "history": 8,
        "min_bytes": 1_000_000}})
    packets = Pipeline(config)
    packets.feed_all(read_packets(pcap))
    assert [f for f in packets.findings if f.detector == "exfil"] == []  # packet events carry no length
    export, exported = softflowd_export(pcap, tmp_path)
    _fmt, flows = open_file(export, lambda: datetime.now(UTC), SkipCounter(logging.getLogger(__name__), "x"))
    pipeline = Pipeline(config)
    assert pipeline.feed_all(flows) == exported
    assert not pipeline.failures
    (f,) = [f for f in pipeline.findings if f.detector == "exfil"]
    assert f.entities == {"victim": "127.0.0.1", "attacker": DROP}
    assert 6_000_000 <= f.counts["bytes_out"] <= 6_600_000  # payload plus TCP/IP headers
    assert f.counts["baseline_bytes"] < 100_000
