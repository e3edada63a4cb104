"""Record real scans between two network namespaces into small pcaps with their ground truth.

    sudo .venv/bin/python -m tests.support.record_scans [OUT_DIR]

An attacker namespace (10.0.0.9) and a victim namespace (10.0.0.5) share a veth pair on
10.0.0.0/24; the victim also routes 10.0.1.0/24 nowhere, so sweeps and horizontal scans of that
network leave the attacker as IP packets (not only ARP). The victim listens on TCP 22 and 80 and
UDP 123 so some ports are open. Debian's `nmap` and `masscan` scan from the attacker; `tcpdump`
in the victim namespace writes one pcap per technique (snap length 128, ports and rates kept small
so each file stays well under 200 KB), and TRUTH.yaml records technique, attacker, victim,
command, tool versions and date. Generated edge cases (scapy) come from `tests.support.scan_edges`.

The distributed scan (`--distributed` records only it, keeping the other files) uses five attacker
namespaces (10.0.0.21-25) on a bridge in the victim namespace; each runs its own nmap SYN scan of a
14-port slice of 1-70 on the victim at the same time, so no source alone reaches the port-scan
detector's thresholds while together they probe 70 ports. tcpdump listens on the victim's bridge.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support.netns import Lab, Namespace

ATTACKER, VICTIM = "10.0.0.9", "10.0.0.5"
FAR_NET = "10.0.1.0/24"  # routed via the victim, where nothing answers
OUT = Path(__file__).resolve().parents[1] / "data" / "captures" / "scans"

LISTENERS = """
import socket, threading
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, _ = s.accept(); c.close()
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(2048); s.sendto(data[:48], peer)
for p in (22, 80):
    threading.Thread(target=tcp, args=(p,), daemon=True).start()
udp(123)
"""

NMAP = ["nmap", "-n", "-Pn", "-T4", "--max-retries", "1"]
# (file stem, technique, attacker, victim (host or network), argv run in the attacker namespace)
SCANS: list[tuple[str, str, str, str, list[str]]] = [
    ("nmap-syn", "tcp-syn", ATTACKER, VICTIM, [*NMAP, "-sS", "-p", "1-200", VICTIM]),
    ("nmap-udp", "udp", ATTACKER, VICTIM, [*NMAP, "-sU", "-p", "1-100,123,161", VICTIM]),
    ("nmap-fin", "tcp-fin", ATTACKER, VICTIM, [*NMAP, "-sF", "-p", "1-200", VICTIM]),
    ("nmap-null", "tcp-null", ATTACKER, VICTIM, [*NMAP, "-sN", "-p", "1-200", VICTIM]),
    ("nmap-xmas", "tcp-xmas", ATTACKER, VICTIM, [*NMAP, "-sX", "-p", "1-200", VICTIM]),
    ("nmap-ack", "tcp-ack", ATTACKER, VICTIM, [*NMAP, "-sA", "-p", "1-200", VICTIM]),
    ("nmap-maimon", "tcp-maimon", ATTACKER, VICTIM, [*NMAP, "-sM", "-p", "1-200", VICTIM]),
    ("nmap-window", "tcp-ack", ATTACKER, VICTIM, [*NMAP, "-sW", "-p", "1-200", VICTIM]),
    ("nmap-sctp-init", "sctp-init", ATTACKER, VICTIM, [*NMAP, "-sY", "-p", "1-200", VICTIM]),
    ("nmap-ipproto", "ip-protocol", ATTACKER, VICTIM, [*NMAP, "-sO", "-p", "0-60", VICTIM]),
    ("nmap-sweep-arp", "sweep-arp", ATTACKER, "10.0.0.0/25",
     ["nmap", "-n", "-sn", "-T5", "10.0.0.0/25"]),
    ("nmap-sweep-ip", "sweep-icmp", ATTACKER, "10.0.1.0/26",
     ["nmap", "-n", "-sn", "-T5", "--max-retries", "0", "10.0.1.0/26"]),
    ("nmap-horizontal-22", "horizontal-tcp", ATTACKER, "10.0.1.0/25",
     [*NMAP, "-sS", "-p", "22", "--max-retries", "0", "10.0.1.0/25"]),
    ("nmap-horizontal-udp-161", "horizontal-udp", ATTACKER, "10.0.1.0/25",
     [*NMAP, "-sU", "-p", "161", "--max-retries", "0", "10.0.1.0/25"]),
    ("masscan-syn", "tcp-syn", ATTACKER, VICTIM,
     ["masscan", "--adapter", "eth0", "--adapter-ip", ATTACKER, "--router-mac", "{victim_mac}",
      "-p", "1-200", "--rate", "2000", "--wait", "2", VICTIM]),
    ("masscan-udp", "udp", ATTACKER, VICTIM,
     ["masscan", "--adapter", "eth0", "--adapter-ip", ATTACKER, "--router-mac", "{victim_mac}",
      "-p", "U:1-120", "--rate", "2000", "--wait", "2", VICTIM]),
]


# The distributed scan: sources, and the port slice each one's nmap probes at the same time.
DISTRIBUTED_SOURCES = ("10.0.0.21", "10.0.0.22", "10.0.0.23", "10.0.0.24", "10.0.0.25")
DISTRIBUTED_SLICE = 14
DISTRIBUTED_FILE = "nmap-distributed.pcap"


def distributed_argv(index: int) -> list[str]:
    """The nmap command source number `index` runs: a SYN scan of its own slice of ports 1-70."""
    first = 1 + index * DISTRIBUTED_SLICE
    return [*NMAP, "-sS", "-p", f"{first}-{first + DISTRIBUTED_SLICE - 1}", VICTIM]


def tool_versions() -> dict[str, str]:
    """The first line of each tool's version output."""
    out: dict[str, str] = {}
    for tool, arg in (("nmap", "--version"), ("masscan", "--version"), ("tcpdump", "--version")):
        text = subprocess.run([tool, arg], capture_output=True, text=True, check=False)
        lines = [ln for ln in (text.stdout + text.stderr).splitlines() if ln.strip()]
        out[tool] = lines[0].strip() if lines else "?"
    return out


def mac_of(ns: Namespace, dev: str) -> str:
    """The MAC address of `dev` inside `ns`."""
    return ns.run(["cat", f"/sys/class/net/{dev}/address"]).stdout.strip()


def capture(victim: Namespace, attacker: Namespace, argv: list[str], pcap: Path) -> None:
    """Run argv in the attacker namespace while tcpdump writes what the victim's eth0 sees."""
    dump = victim.popen(["tcpdump", "-i", "eth0", "-s", "128", "-U", "-n", "-w", str(pcap),
                         "not ip6"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # tcpdump says "listening on" once its socket is open.
    assert dump.stderr is not None
    dump.stderr.readline()
    time.sleep(0.3)
    try:
        attacker.run(argv, timeout=300)
    finally:
        time.sleep(1.0)
        dump.terminate()
        dump.wait(timeout=5)


def record(out: Path) -> list[dict[str, object]]:
    """Record every scan in SCANS into `out`; return the ground-truth entries."""
    out.mkdir(parents=True, exist_ok=True)
    versions = tool_versions()
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    truth: list[dict[str, object]] = []
    with Lab("scan") as lab:
        attacker, victim = lab.namespace("atk"), lab.namespace("vic")
        lab.veth(attacker, victim, left=f"{ATTACKER}/24", right=f"{VICTIM}/24", left_name="eth0")
        victim.run(["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"])
        victim.run(["ip", "route", "add", "blackhole", FAR_NET])
        attacker.run(["ip", "route", "add", FAR_NET, "via", VICTIM])
        victim.popen([sys.executable, "-c", LISTENERS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        victim_mac = mac_of(victim, "eth0")
        for stem, technique, src, dst, argv in SCANS:
            if shutil.which(argv[0]) is None:
                print(f"skip {stem}: {argv[0]} not installed", file=sys.stderr)
                continue
            argv = [a.replace("{victim_mac}", victim_mac) for a in argv]
            pcap = out / f"{stem}.pcap"
            capture(victim, attacker, argv, pcap)
            size = pcap.stat().st_size
            print(f"{stem}: {size} bytes", file=sys.stderr)
            truth.append({"file": pcap.name, "technique": technique, "attacker": src, "victim": dst,
                          "command": " ".join(argv), "tool": argv[0], "tool_version": versions[argv[0]],
                          "capture": f"tcpdump -s 128 on the victim's veth ({versions['tcpdump']})",
                          "date": today, "bytes": size})
    return truth


def record_distributed(out: Path) -> dict[str, object]:
    """Record five sources scanning slices of one victim's ports at once; return its ground truth."""
    out.mkdir(parents=True, exist_ok=True)
    versions = tool_versions()
    pcap = out / DISTRIBUTED_FILE
    with Lab("dscan") as lab:
        victim = lab.namespace("vic")
        victim.run(["ip", "link", "add", "br0", "type", "bridge"])
        victim.run(["ip", "addr", "add", f"{VICTIM}/24", "dev", "br0"])
        victim.run(["ip", "link", "set", "br0", "up"])
        attackers: list[Namespace] = []
        for i, src in enumerate(DISTRIBUTED_SOURCES):
            ns = lab.namespace(f"a{i}")
            subprocess.run(["ip", "link", "add", "eth0", "netns", ns.name, "type", "veth",
                            "peer", "name", f"p{i}", "netns", victim.name], check=True, timeout=15)
            victim.run(["ip", "link", "set", f"p{i}", "master", "br0"])
            victim.run(["ip", "link", "set", f"p{i}", "up"])
            ns.run(["ip", "addr", "add", f"{src}/24", "dev", "eth0"])
            ns.run(["ip", "link", "set", "eth0", "up"])
            attackers.append(ns)
        victim.popen([sys.executable, "-c", LISTENERS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # bridge ports forwarding, listeners bound
        dump = victim.popen(["tcpdump", "-i", "br0", "-s", "128", "-U", "-n", "-w", str(pcap), "not ip6"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert dump.stderr is not None
        dump.stderr.readline()
        time.sleep(0.3)
        try:
            scans = [ns.popen(distributed_argv(i), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for i, ns in enumerate(attackers)]
            for proc in scans:
                proc.wait(timeout=300)
        finally:
            time.sleep(1.0)
            dump.terminate()
            dump.wait(timeout=5)
    size = pcap.stat().st_size
    print(f"{pcap.stem}: {size} bytes", file=sys.stderr)
    return {"file": pcap.name, "technique": "distributed-tcp-syn", "target": VICTIM, "ports": "1-70",
            "sources": list(DISTRIBUTED_SOURCES),
            "commands": {src: " ".join(distributed_argv(i)) for i, src in enumerate(DISTRIBUTED_SOURCES)},
            "concurrent": True, "open_ports": [22],
            "expected": {"detector": "scan_distributed", "technique": "T1046", "unanswered_ports": 69},
            "configured": "detector defaults: [detectors.scan_distributed] ports 50, sources 5; each source's "
                          "14 ports stay under [detectors.portscan] vertical_ports 30 and slow_ports 24",
            "tool": "nmap", "tool_version": versions["nmap"],
            "capture": f"tcpdump -s 128 on the victim's bridge ({versions['tcpdump']})",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"), "bytes": size}


HEADER = ("# Ground truth for the recorded scans in this folder (tests/support/record_scans.py).\n"
          "# recorded: attacker and victim are network namespaces joined by a veth pair on 10.0.0.0/24;\n"
          "# 10.0.1.0/24 is routed through the victim to a blackhole.\n"
          "# distributed: five attacker namespaces on a bridge in the victim's namespace, one nmap each,\n"
          "# run concurrently, each on its own slice of the victim's ports.\n")


def main(argv: list[str] | None = None) -> None:
    """Record into OUT (or the given folder) and write TRUTH.yaml beside the pcaps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", nargs="?", type=Path, default=OUT)
    parser.add_argument("--distributed", action="store_true",
                        help="record only the distributed scan, keeping the other entries of TRUTH.yaml")
    args = parser.parse_args(argv)
    out: Path = args.out
    old = out / "TRUTH.yaml"
    truth: dict[str, object] = yaml.safe_load(old.read_text()) if old.exists() else {}
    if not args.distributed:
        truth["recorded"] = record(out)
    truth["distributed"] = [record_distributed(out)]
    doc = {"recorded": truth.get("recorded", []), "distributed": truth["distributed"]}
    old.write_text(HEADER + yaml.safe_dump(doc, sort_keys=False))


if __name__ == "__main__":
    main()
