"""A raw-frame sender for capture tests: prebuilt Ethernet/IPv4/TCP SYNs out of an AF_PACKET socket.

Run inside the sending namespace (`ip netns exec NS python packet_blaster.py ...`); it prints one
JSON line `{"sent": N, "seconds": S}` when done. Needs CAP_NET_RAW.

    python packet_blaster.py eth0 --dst-mac 02:.. --src 10.0.0.1 --dst 10.0.0.2 --ports 1-100 --count 1000
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import time
from collections.abc import Sequence


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_frame(src_mac: bytes, dst_mac: bytes, src: str, dst: str, sport: int, dport: int) -> bytes:
    """One Ethernet frame holding a TCP SYN from src:sport to dst:dport, checksums filled in."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
    tcp_sum = _checksum(s + d + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", tcp_sum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + tcp


def mac_of(interface: str) -> bytes:
    """The interface's hardware address."""
    with open(f"/sys/class/net/{interface}/address", encoding="ascii") as fh:
        return bytes.fromhex(fh.read().strip().replace(":", ""))


def blast(interface: str, frames: Sequence[bytes], count: int, rate: float = 0.0) -> tuple[int, float]:
    """Send `count` frames, cycling through `frames`, at `rate` per second (0: as fast as possible)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((interface, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    send, n_frames = sock.send, len(frames)
    start = time.monotonic()
    sent = 0
    try:
        while sent < count:
            burst = min(count - sent, 256)
            for i in range(sent, sent + burst):
                frame = frames[i % n_frames]
                while True:
                    try:
                        send(frame)
                        break
                    except BlockingIOError:  # the qdisc is full: wait for room, lose nothing
                        time.sleep(0.0001)
            sent += burst
            if rate:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    finally:
        sock.close()
    return sent, time.monotonic() - start


def main() -> None:
    """Parse the command line, send, print the JSON summary."""
    p = argparse.ArgumentParser()
    p.add_argument("interface")
    p.add_argument("--dst-mac", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--ports", default="1-1000", help="destination ports LO-HI, one SYN each per cycle")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, default=0.0)
    args = p.parse_args()
    lo, _, hi = args.ports.partition("-")
    dst_mac = bytes.fromhex(args.dst_mac.replace(":", ""))
    src_mac = mac_of(args.interface)
    frames = [syn_frame(src_mac, dst_mac, args.src, args.dst, 40000, port)
              for port in range(int(lo), int(hi or lo) + 1)]
    sent, seconds = blast(args.interface, frames, args.count, args.rate)
    print(json.dumps({"sent": sent, "seconds": round(seconds, 4)}), flush=True)


if __name__ == "__main__":
    main()
