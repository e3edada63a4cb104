"""Kernel drop counts of UDP sockets (receive buffer full), read from /proc/net/udp and udp6 (Linux)."""

from __future__ import annotations

import ipaddress
import struct

TABLES = ("/proc/net/udp", "/proc/net/udp6")


def _rows() -> list[list[str]]:
    rows: list[list[str]] = []
    for table in TABLES:
        try:
            with open(table, encoding="ascii") as fh:
                next(fh, None)
                rows.extend(row.split() for row in fh)
        except OSError:
            continue
    return rows


def proc_udp_drops(inode: int) -> int | None:
    """The kernel's drop count for the UDP socket with this inode; None if there is none."""
    want = str(inode)
    for cols in _rows():
        if len(cols) >= 13 and cols[9] == want:
            return int(cols[12])
    return None


def local_address(host: str, port: int) -> str:
    """How /proc/net/udp{,6} writes a bound address: 32-bit words in host byte order, then the port."""
    packed = ipaddress.ip_address(host or "0.0.0.0").packed
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def proc_udp_drops_at(host: str, port: int) -> int | None:
    """The summed drop count of the UDP sockets bound to host:port; None if there is none."""
    want = local_address(host, port)
    found = [int(cols[12]) for cols in _rows() if len(cols) >= 13 and cols[1] == want]
    return sum(found) if found else None
