"""Generated captures (scapy) for the scan edge cases recordings cannot give cheaply, and benign controls.

    .venv/bin/python -m tests.support.scan_edges [OUT_DIR]   # default tests/data/captures/scans/generated

Each builder returns (packets, truth); `write_all` writes `<name>.pcap` files and GENERATED.yaml.
Times start at T0 (2026-01-05 09:00 UTC); addresses are fixed so the truth is too.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

T0 = 1_767_603_600.0
VICTIM = "10.0.0.5"
OUT = Path(__file__).resolve().parents[1] / "data" / "captures" / "scans" / "generated"

Built = tuple[list[Packet], dict[str, Any]]


def _eth(pkt: Packet, t: float) -> Packet:
    frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / pkt
    frame.time = t
    return frame


def _syn_probe(t: float, src: str, dst: str, port: int, sport: int, open_: bool) -> list[Packet]:
    out = [_eth(IP(src=src, dst=dst) / TCP(sport=sport, dport=port, flags="S", window=1024), t)]
    reply = "SA" if open_ else "RA"
    out.append(_eth(IP(src=dst, dst=src) / TCP(sport=port, dport=sport, flags=reply), t + 0.0002))
    return out


def distributed() -> Built:
    """Twelve internet sources each probe 12 ports of one host: 144 ports, nobody over the threshold."""
    rng = random.Random(7)
    sources = [f"185.220.101.{i}" for i in range(10, 22)]
    ports = rng.sample(range(1, 10000), 144)
    pkts: list[Packet] = []
    for i, port in enumerate(ports):
        src = sources[i % len(sources)]
        pkts += _syn_probe(T0 + i * 2.0, src, VICTIM, port, 40000 + i, open_=port in (22, 80))
    return pkts, {"technique": "distributed", "victim": VICTIM, "sources": sources, "ports": len(ports),
                  "detector": "scan_distributed", "attack": ["T1595.001", "T1046"]}


def low_and_slow() -> Built:
    """One SYN a minute for three hours from one source, 180 ports, plus two services that answer."""
    pkts: list[Packet] = []
    for i in range(180):
        port = 1 + i * 7
        pkts += _syn_probe(T0 + i * 60.0, "10.0.0.66", VICTIM, port, 50000 + i, open_=port in (22, 85))
    return pkts, {"technique": "low-and-slow", "attacker": "10.0.0.66", "victim": VICTIM, "probes": 180,
                  "interval_s": 60, "detector": "portscan", "attack": ["T1046"]}


def horizontal() -> Built:
    """SYNs to port 445 across a /24, a few hosts answering."""
    pkts: list[Packet] = []
    for i in range(1, 255):
        pkts += _syn_probe(T0 + i * 0.01, "10.0.0.77", f"10.0.2.{i}", 445, 41000, open_=i % 50 == 0)
    return pkts, {"technique": "horizontal-tcp", "attacker": "10.0.0.77", "victim": "10.0.2.0/24",
                  "port": 445, "detector": "portscan", "attack": ["T1046"]}


def unicornscan_udp() -> Built:
    """A unicornscan-like UDP scan seen only by its ICMP port unreachables (the probes took another path)."""
    pkts: list[Packet] = []
    for i, port in enumerate(range(1, 301)):
        quote = IPerror(src="10.0.0.88", dst=VICTIM, proto=17) / UDPerror(sport=33000, dport=port)
        pkts.append(_eth(IP(src=VICTIM, dst="10.0.0.88") / ICMP(type=3, code=3) / quote, T0 + i * 0.003))
    return pkts, {"technique": "udp", "attacker": "10.0.0.88", "victim": VICTIM, "ports": 300,
                  "detector": "portscan", "attack": ["T1046"], "evidence": "ICMP port unreachable only"}


def benign_ntp_snmp() -> Built:
    """An NTP server answering 300 clients, and one SNMP manager polling 150 devices each minute."""
    pkts: list[Packet] = []
    for i in range(300):
        client, t = f"10.0.4.{i % 250 + 1}", T0 + i * 0.5
        sport = 123 if i % 2 else 30000 + i
        pkts.append(_eth(IP(src=client, dst="10.0.0.123") / UDP(sport=sport, dport=123) / Raw(b"\x23" + b"\0" * 47), t))
        pkts.append(_eth(IP(src="10.0.0.123", dst=client) / UDP(sport=123, dport=sport) / Raw(b"\x24" + b"\0" * 47),
                         t + 0.001))
    for poll in range(3):
        for d in range(150):
            device, t = f"10.0.3.{d + 1}", T0 + poll * 60 + d * 0.01
            sport = 45000 + poll
            pkts.append(_eth(IP(src="10.0.0.2", dst=device) / UDP(sport=sport, dport=161) / Raw(b"\x30" * 24), t))
            pkts.append(_eth(IP(src=device, dst="10.0.0.2") / UDP(sport=161, dport=sport) / Raw(b"\x30" * 32),
                             t + 0.004))
    pkts.sort(key=lambda p: float(p.time))
    return pkts, {"technique": "benign", "what": "NTP server with 300 clients; SNMP manager 10.0.0.2 polling "
                                                "150 devices every minute for 3 minutes"}


def benign_web_and_traceroute() -> Built:
    """One client's 120 short HTTP connections to one server (handshakes, data, closes), and a UDP traceroute."""
    pkts: list[Packet] = []
    client, server = "10.0.0.20", "10.0.0.80"
    for i in range(120):
        sp, t = 42000 + i, T0 + i * 1.0
        c2s, s2c = IP(src=client, dst=server), IP(src=server, dst=client)
        seq = [(c2s, "S", 0.0), (s2c, "SA", 0.001), (c2s, "A", 0.002), (c2s, "PA", 0.003), (s2c, "A", 0.004),
               (s2c, "PA", 0.005), (c2s, "A", 0.006), (s2c, "FA", 0.007), (c2s, "FA", 0.008), (s2c, "A", 0.009)]
        for ip, flags, dt in seq:
            sport, dport = (sp, 80) if ip.src == client else (80, sp)
            pkts.append(_eth(ip / TCP(sport=sport, dport=dport, flags=flags), t + dt))
    for hop in range(1, 31):
        for k in range(3):
            port = 33434 + (hop - 1) * 3 + k
            pkts.append(_eth(IP(src=client, dst="198.51.100.200", ttl=hop) / UDP(sport=51000, dport=port),
                             T0 + 200 + hop + k * 0.01))
    return pkts, {"technique": "benign", "what": "120 short HTTP connections 10.0.0.20 -> 10.0.0.80; UDP "
                                                "traceroute to 198.51.100.200"}


BUILDERS: dict[str, Callable[[], Built]] = {
    "distributed": distributed, "low-and-slow": low_and_slow, "horizontal-445": horizontal,
    "unicornscan-udp-unreachables": unicornscan_udp, "benign-ntp-snmp": benign_ntp_snmp,
    "benign-web-traceroute": benign_web_and_traceroute,
}


def write(name: str, out: Path) -> tuple[Path, dict[str, Any]]:
    """Write one generated capture; returns its path and truth."""
    pkts, truth = BUILDERS[name]()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.pcap"
    wrpcap(str(path), pkts)
    return path, {"file": path.name, **truth}


def write_all(out: Path = OUT) -> list[dict[str, Any]]:
    """Write every generated capture and GENERATED.yaml into `out`."""
    truth = [write(name, out)[1] for name in BUILDERS]
    (out / "GENERATED.yaml").write_text("# Generated by tests/support/scan_edges.py (scapy); times from "
                                        "2026-01-05T09:00Z.\n" + yaml.safe_dump({"generated": truth}, sort_keys=False))
    return truth


if __name__ == "__main__":
    write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
