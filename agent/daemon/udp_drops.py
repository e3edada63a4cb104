"""Kernel drop counts of UDP sockets (receive buffer full), read from /proc/net/udp and udp6 (Linux)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct
from collections import Counter
from typing import TYPE_CHECKING

from .sources import split_host_port

if TYPE_CHECKING:
    from .sources import Sink

log = logging.getLogger(__name__)

TABLES = ("/proc/net/udp", "/proc/net/udp6")
DROPS_POLL_S = 1.0
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux; Python does not export it


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


class DrainedUdp:
    """What every drained UDP listener shares: binding with a sized receive buffer and the kernel's
    per-wakeup drop count asked for, the drop count polled into `counters`, and a stop that reads
    what is still queued first. Subclasses set `name`, `hostport`, `rcvbuf_wanted`, `counters` and
    `_timer = None`, call `_listen` from `start`, and define `_drain`."""

    name: str
    hostport: str
    rcvbuf_wanted: int
    rcvbuf: int | None  # what the kernel granted; None before `_listen`
    bound: tuple[str, int] | None
    counters: Counter[str]
    _sock: socket.socket | None
    _loop: asyncio.AbstractEventLoop | None
    _sink: Sink | None
    _timer: asyncio.TimerHandle | None
    _ovfl: bool

    def _drain(self) -> None:
        raise NotImplementedError

    async def _listen(self, sink: Sink) -> None:
        """Bind the socket, size its receive buffer and start draining it."""
        host, port = split_host_port(self.hostport)
        loop = sink.loop
        infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf_wanted)
            self.rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            if self.rcvbuf // 2 < self.rcvbuf_wanted:  # Linux reports twice what it grants for payload
                log.warning("%s: SO_RCVBUF %d requested, kernel granted %d (capped by net.core.rmem_max); "
                            "set sysctl net.core.rmem_max=%d to avoid drops in bursts",
                            self.name, self.rcvbuf_wanted, self.rcvbuf // 2, self.rcvbuf_wanted)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
                self._ovfl = True
            except OSError:
                self._ovfl = False  # not Linux: /proc/net/udp or nothing
            sock.bind(addr)
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop, self._sink = sock, loop, sink
        self.bound = sock.getsockname()[:2]
        loop.add_reader(sock.fileno(), self._drain)
        self._timer = loop.call_later(DROPS_POLL_S, self._poll_drops)

    async def stop(self) -> None:
        """Read what is queued, then close the socket."""
        if self._timer is not None:
            self._timer.cancel()
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._drain()
            self.refresh_drops()
            self._sock.close()
            self._sock = None

    def refresh_drops(self) -> None:
        """Read the kernel's drop count for this socket now (also done every DROPS_POLL_S)."""
        if self._sock is not None:
            drops = proc_udp_drops(os.fstat(self._sock.fileno()).st_ino)
            if drops is not None and drops > self.counters["kernel_drops"]:
                self.counters["kernel_drops"] = drops

    def _poll_drops(self) -> None:
        self.refresh_drops()
        if self._loop is not None and self._sock is not None:
            self._timer = self._loop.call_later(DROPS_POLL_S, self._poll_drops)
