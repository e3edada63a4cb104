"""Synthetic telemetry the project writes itself: for the demo, the tests and the benchmarks.

Frames are built with struct (DNS payloads with scapy) so that large captures write quickly.
Addresses: the site is 10.20.0.0/16; outsiders come from the documentation ranges of RFC 5737.
"""

from __future__ import annotations

import base64
import json
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR

GATEWAY, GATEWAY_MAC = "10.20.0.1", "02:00:0a:14:00:01"
RESOLVER = "10.20.0.53"

# Ground truth of what the demo capture and logs contain: (detector, attacker, victim).
DEMO_TRUTH = (
    ("portscan", "203.0.113.50", "10.20.0.10"),
    ("bruteforce", "198.51.100.23", "10.20.0.22"),
    ("arpspoof", "10.20.0.99", "10.20.0.15"),
    ("dnstunnel", "10.20.0.40", RESOLVER),
    ("synflood", None, "10.20.0.80"),
    ("sweep", "10.20.0.66", "10.20.1.0/24"),
    ("bruteforce", "192.0.2.77", "bastion"),
    ("ids", "203.0.113.9", "10.20.0.25"),
)

DEMO_ASSETS = """
[[assets]]
cidr = "10.20.0.0/24"
name = "dmz"
criticality = "high"

[[assets]]
cidr = "10.20.0.53/32"
name = "resolver"
criticality = "critical"
protected = true

[[assets]]
cidr = "10.20.0.1/32"
name = "gateway"
criticality = "critical"
protected = true
"""

DEMO_CONFIG = """\
# Embedded demo configuration: the demo's own store and the demo site's assets.
[store]
url = "sqlite:///{db}"
"""+DEMO_ASSETS+"""
# The demo site's inventory: the block playbook finds its firewall here (the one device with the
# role linux-firewall). No credentials: the demo suggests, and nothing in it connects anywhere.
[[devices]]
name = "fw-dmz"
address = "192.0.2.10"
platform = "linux"
roles = ["linux-firewall", "linux-host"]
description = "DMZ firewall (demo; TEST-NET address)"

# The sensor port the capture playbook uses: a site choice the analyst cannot know.
[policy.defaults.capture-incident-traffic]
interface = "span0"

# Keep the demo's own control socket out of /run.
[control]
socket = "{socket}"
socket_group = "{group}"
"""


def _ip(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _mac_for(ip: str) -> str:
    return "02:00:" + ":".join(f"{int(x):02x}" for x in ip.split("."))


def ether(src_mac: str, dst_mac: str, ethertype: int, payload: bytes) -> bytes:
    """An Ethernet II frame."""
    return _mac(dst_mac) + _mac(src_mac) + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64, ident: int = 0) -> bytes:
    """An IPv4 packet with a correct header checksum."""
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, ttl, proto, 0,
                      _ip(src), _ip(dst))
    return hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:] + payload


def tcp(sport: int, dport: int, flags: int, seq: int = 0, ack: int = 0, payload: bytes = b"") -> bytes:
    """A TCP segment (checksum left zero: captures from offloading NICs look the same)."""
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP datagram."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp_echo(ident: int, seq: int) -> bytes:
    """An ICMP echo request."""
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"watchstander-demo"
    return body[:2] + struct.pack("!H", _csum(body)) + body[4:]


def arp(op: int, hwsrc: str, psrc: str, hwdst: str, pdst: str) -> bytes:
    """An Ethernet/IPv4 ARP message."""
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, _mac(hwsrc), _ip(psrc), _mac(hwdst), _ip(pdst))


def frame(src: str, dst: str, l4: bytes, proto: int, ttl: int = 64) -> bytes:
    """Ethernet + IPv4 around a transport payload, MACs derived from the addresses."""
    return ether(_mac_for(src), _mac_for(dst), 0x0800, ipv4(src, dst, proto, l4, ttl))


@dataclass
class PcapWriter:
    """Writes a classic little-endian microsecond pcap."""

    path: Path

    def __enter__(self) -> PcapWriter:
        self._fh = open(self.path, "wb")
        self._fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.count = 0
        return self

    def write(self, ts: float, data: bytes) -> None:
        """Append one frame at time `ts`."""
        sec = int(ts)
        self._fh.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(data), len(data)))
        self._fh.write(data)
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def _benign(rng: random.Random, t: float, n_conn: int) -> Iterator[tuple[float, bytes]]:
    clients = [f"10.20.0.{i}" for i in range(100, 140)]
    servers = [f"93.184.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(200)]
    for _ in range(n_conn):
        c, s = rng.choice(clients), rng.choice(servers)
        sp, dp = rng.randint(32768, 60999), rng.choice((443, 443, 443, 80, 22))
        seq = rng.getrandbits(32)
        yield t, frame(c, s, tcp(sp, dp, 0x02, seq), 6)
        yield t + 0.01, frame(s, c, tcp(dp, sp, 0x12, 1, seq + 1), 6)
        yield t + 0.02, frame(c, s, tcp(sp, dp, 0x10, seq + 1, 2), 6)
        for k in range(3):
            yield t + 0.03 + k * 0.01, frame(s, c, tcp(dp, sp, 0x18, 2 + k * 1000, seq + 1, b"x" * 1000), 6)
        yield t + 0.08, frame(c, s, tcp(sp, dp, 0x11, seq + 1, 3002), 6)
        t += rng.random() * 0.02


def _dns_query(client: str, name: str, qtype: int, qid: int, t: float) -> tuple[float, bytes]:
    payload = bytes(DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype=qtype)))
    return t, frame(client, RESOLVER, udp(40000 + qid % 20000, 53, payload), 17)


def demo_packets(start: float, benign_connections: int = 300, seed: int = 7) -> list[tuple[float, bytes]]:
    """Every frame of the demo capture, in time order."""
    rng = random.Random(seed)
    out: list[tuple[float, bytes]] = list(_benign(rng, start, benign_connections))
    # Vertical SYN scan of a DMZ server.
    t = start + 60
    for port in range(1, 301):
        out.append((t + port * 0.005, frame("203.0.113.50", "10.20.0.10", tcp(51000, port, 0x02, port), 6)))
    # SSH password guessing: short connections, one after another.
    t = start + 120
    for k in range(14):
        sp = 40000 + k
        out.append((t, frame("198.51.100.23", "10.20.0.22", tcp(sp, 22, 0x02, k), 6)))
        out.append((t + 0.01, frame("10.20.0.22", "198.51.100.23", tcp(22, sp, 0x12, 9, k + 1), 6)))
        out.append((t + 2.5, frame("198.51.100.23", "10.20.0.22", tcp(sp, 22, 0x11, k + 1, 10), 6)))
        t += 3.0
    # ARP poisoning: the attacker tells a workstation that it is the gateway, then resolves as itself.
    t = start + 200
    victim, victim_mac, evil_mac = "10.20.0.15", _mac_for("10.20.0.15"), "02:00:de:ad:be:ef"
    out.append((t, ether(_mac_for("10.20.0.15"), "ff:ff:ff:ff:ff:ff", 0x0806,
                         arp(1, victim_mac, victim, "00:00:00:00:00:00", GATEWAY))))
    out.append((t + 0.001, ether(GATEWAY_MAC, victim_mac, 0x0806, arp(2, GATEWAY_MAC, GATEWAY, victim_mac, victim))))
    for k in range(4):
        out.append((t + 5 + k * 2, ether(evil_mac, victim_mac, 0x0806, arp(2, evil_mac, GATEWAY, victim_mac, victim))))
    out.append((t + 15, ether(evil_mac, "ff:ff:ff:ff:ff:ff", 0x0806,
                              arp(1, evil_mac, "10.20.0.99", "00:00:00:00:00:00", GATEWAY))))
    # DNS tunnel: base32 chunks of "exfiltrated" data in TXT queries.
    t = start + 300
    secret = bytes(rng.getrandbits(8) for _ in range(40 * 35))
    for k in range(40):
        chunk = base64.b32encode(secret[k * 35:(k + 1) * 35]).decode().rstrip("=").lower()
        out.append(_dns_query("10.20.0.40", f"{chunk}.{k}.t.exfil-example.net", 16, k, t + k * 0.5))
    for k, name in enumerate(("www.example.com", "mail.example.org", "updates.example.net")):
        out.append(_dns_query("10.20.0.101", name, 1, 1000 + k, start + 5 + k))
    # SYN flood from spoofed sources.
    t = start + 400
    for k in range(1500):
        src = f"198.18.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        out.append((t + k * 0.002, frame(src, "10.20.0.80", tcp(rng.randint(1024, 65535), 443, 0x02, k), 6)))
    # ICMP echo sweep of the next /24.
    t = start + 500
    for k in range(1, 255):
        out.append((t + k * 0.01, frame("10.20.0.66", f"10.20.1.{k}", icmp_echo(77, k), 1)))
    out.sort(key=lambda x: x[0])
    return out


def demo_syslog_lines(start: float) -> list[str]:
    """auth.log lines: an SSH brute force that ends in a successful login, among ordinary noise."""
    lines = []
    for k in range(18):
        ts = datetime.fromtimestamp(start + 30 + k * 4, timezone.utc).strftime("%b %e %H:%M:%S")
        pid = 4100 + k
        lines.append(f"{ts} bastion sshd[{pid}]: Failed password for invalid user admin{k % 3} "
                     f"from 192.0.2.77 port {50000 + k} ssh2")
    ts = datetime.fromtimestamp(start + 110, timezone.utc).strftime("%b %e %H:%M:%S")
    lines.append(f"{ts} bastion sshd[4200]: Accepted password for deploy from 192.0.2.77 port 50100 ssh2")
    for k in range(6):
        ts = datetime.fromtimestamp(start + k * 60, timezone.utc).strftime("%b %e %H:%M:%S")
        lines.append(f"{ts} bastion CRON[{3000 + k}]: (root) CMD (/usr/lib/sysstat/debian-sa1 1 1)")
    ts = datetime.fromtimestamp(start + 200, timezone.utc).strftime("%b %e %H:%M:%S")
    lines.append(f"{ts} bastion sshd[4300]: Accepted publickey for ops from 10.20.0.101 port 51000 ssh2")
    return sorted(lines, key=lambda ln: ln[:15])


def demo_eve(start: float) -> list[dict[str, object]]:
    """Suricata alerts: an exploit attempt against a DMZ web server."""
    out = []
    for k in range(3):
        ts = datetime.fromtimestamp(start + 250 + k, timezone.utc).isoformat()
        out.append({"timestamp": ts, "event_type": "alert", "src_ip": "203.0.113.9", "src_port": 44000 + k,
                    "dest_ip": "10.20.0.25", "dest_port": 80, "proto": "TCP",
                    "alert": {"action": "allowed", "gid": 1, "signature_id": 2024897, "rev": 3,
                              "signature": "ET EXPLOIT Apache Struts RCE attempt (CVE-2017-5638)",
                              "category": "Attempted Administrator Privilege Gain", "severity": 1}})
    return out


def write_demo_telemetry(out_dir: Path, now: datetime, benign_connections: int = 300) -> list[Path]:
    """Write the demo capture, auth log and EVE file (activity in the hour before `now`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = now.timestamp() - 3600
    pcap = out_dir / "demo-capture.pcap"
    with PcapWriter(pcap) as w:
        for ts, data in demo_packets(start, benign_connections):
            w.write(ts, data)
    log = out_dir / "demo-auth.log"
    log.write_text("\n".join(demo_syslog_lines(start)) + "\n", encoding="utf-8")
    eve = out_dir / "demo-eve.json"
    eve.write_text("\n".join(json.dumps(r) for r in demo_eve(start)) + "\n", encoding="utf-8")
    return [pcap, log, eve]


def write_bench_pcap(path: Path, packets: int, start: float = 1.7e9, seed: int = 11) -> int:
    """A large capture of mostly benign connections with the demo's attacks mixed in; returns frames written."""
    rng = random.Random(seed)
    attacks = demo_packets(start, benign_connections=0, seed=seed)
    written = 0
    with PcapWriter(path) as w:
        t = start
        ai = 0
        while written < packets:
            for ts, data in _benign(rng, t, 50):
                w.write(ts, data)
                written += 1
            t += 1.0
            while ai < len(attacks) and attacks[ai][0] <= t and written < packets:
                w.write(*attacks[ai])
                ai += 1
                written += 1
    return written


def write_bench_syslog(path: Path, lines: int, start: float = 1.7e9, seed: int = 13) -> int:
    """A large auth log: mostly ordinary lines, with guessing campaigns from a few sources."""
    rng = random.Random(seed)
    apps = ("CRON[{pid}]: (root) CMD (run-parts /etc/cron.hourly)",
            "systemd[1]: Started Session {pid} of user ops.",
            "sshd[{pid}]: Accepted publickey for ops from 10.20.0.{oct} port {port} ssh2",
            "sshd[{pid}]: Failed password for root from 203.0.113.{oct} port {port} ssh2",
            "sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
            "rhost=203.0.113.{oct}  user=root",
            "kernel: [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.{oct} DST=10.20.0.5 PROTO=TCP DPT={port}")
    with open(path, "w", encoding="utf-8") as fh:
        for k in range(lines):
            ts = datetime.fromtimestamp(start + k * 0.01, timezone.utc).strftime("%b %e %H:%M:%S")
            tmpl = apps[rng.randrange(len(apps))]
            fh.write(f"{ts} host{k % 7} " + tmpl.format(pid=1000 + k % 30000, oct=rng.randint(1, 20),
                                                       port=rng.randint(1024, 65535)) + "\n")
    return lines
