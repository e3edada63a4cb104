"""A bounded packet capture on the agent host (`packets.capture`), written to a pcap file as evidence.

Bounded three ways: time, packet count and bytes on disk. Packets are matched in Python rather
than with a BPF filter so that no tcpdump or libpcap needs to be installed; a capture is short
and rare, and the per-packet cost is a few attribute reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet
from scapy.sendrecv import AsyncSniffer
from scapy.utils import PcapWriter

from .errors import DeviceError, DeviceRefused

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CaptureResult:
    """The file written and what went into it."""

    path: Path
    packets: int
    bytes: int
    sha256: str
    stopped_by: str          # duration | max_packets | max_bytes


class _Matcher:
    def __init__(self, hosts: Sequence[str], ports: Sequence[int]) -> None:
        self.nets: list[Network] = [ipaddress.ip_network(h, strict=False) for h in hosts]
        self.ports = frozenset(ports)

    def __call__(self, pkt: Packet) -> bool:
        layer = pkt.getlayer(IP) or pkt.getlayer(IPv6)
        if layer is None:
            return False
        try:
            addrs = (ipaddress.ip_address(layer.src), ipaddress.ip_address(layer.dst))
        except ValueError:
            return False
        if not any(a in n for a in addrs for n in self.nets if a.version == n.version):
            return False
        if not self.ports:
            return True
        l4 = pkt.getlayer(TCP) or pkt.getlayer(UDP)
        return l4 is not None and (l4.sport in self.ports or l4.dport in self.ports)


def _capture(interface: str, path: Path, hosts: Sequence[str], ports: Sequence[int], duration_s: float,
             max_packets: int, snaplen: int, max_bytes: int, stop: threading.Event) -> CaptureResult:
    device = f"capture {interface}"
    matcher = _Matcher(hosts, ports)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # evidence: never overwrite, never world-readable
    counts = {"packets": 0, "bytes": 24}
    reason = ["duration"]
    with os.fdopen(fd, "wb") as raw, PcapWriter(raw, sync=False, snaplen=snaplen) as writer:
        def keep(pkt: Packet) -> None:
            data = bytes(pkt)[:snaplen]
            writer.write(pkt)
            counts["packets"] += 1
            counts["bytes"] += 16 + len(data)

        def done(_pkt: Packet) -> bool:
            if counts["packets"] >= max_packets:
                reason[0] = "max_packets"
                return True
            if counts["bytes"] >= max_bytes:
                reason[0] = "max_bytes"
                return True
            return stop.is_set()

        try:
            # AsyncSniffer takes no timeout (scapy 2.5+ raises ValueError): the deadline is kept
            # here, counted from the moment the sniffer listens (before that, stop() is ignored).
            started = threading.Event()
            sniffer = AsyncSniffer(iface=interface, lfilter=matcher, prn=keep, store=False, stop_filter=done,
                                   started_callback=started.set)
            sniffer.start()
            thread = sniffer.thread
            while thread is not None and thread.is_alive() and not started.wait(0.05):
                pass
            deadline = time.monotonic() + duration_s
            # Wake up regularly: stop_filter only runs when a packet arrives, and a quiet link must
            # still end at the deadline or when the run is cancelled.
            while thread is not None and thread.is_alive():
                left = deadline - time.monotonic()
                if stop.wait(max(0.0, min(0.2, left))) or left <= 0:
                    if sniffer.running:
                        sniffer.stop(join=False)
                    thread.join(5)
                    break
            if sniffer.exception is not None:
                raise sniffer.exception
        except PermissionError as exc:
            raise DeviceRefused(device, "capturing needs CAP_NET_RAW (run the agent with that capability)") from exc
        except OSError as exc:
            raise DeviceError(device, f"cannot capture: {exc.strerror or exc}") from exc
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return CaptureResult(path, counts["packets"], path.stat().st_size, digest, reason[0])


async def capture(interface: str, path: Path, hosts: Sequence[str], ports: Sequence[int], *, duration_s: float,
                  max_packets: int, snaplen: int = 65535, max_bytes: int = 512 * 1024 * 1024) -> CaptureResult:
    """Capture packets to or from `hosts` (and `ports`) on `interface` into a new pcap file at `path`."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(_capture, interface, path, hosts, ports, duration_s, max_packets, snaplen,
                                       max_bytes, stop)
    finally:
        stop.set()  # a cancelled run stops the sniffer instead of leaving it to its deadline
