"""Helpers for the syslog intake tests: a collecting sink, senders, and a listener in a subprocess."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from watchstander.connectors.events import Event

LISTENER = Path(__file__).with_name("syslog_listener.py")


class Collector:
    """A sink's feed that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, events: Iterable[Event]) -> None:
        self.events.extend(events)

    def raws(self) -> list[str]:
        """The message text of each event."""
        return [str(ev.raw) for ev in self.events]


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (yielding to the loop) until `predicate()` is true; raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


def octet(msg: bytes) -> bytes:
    """One RFC 6587 octet-counted frame."""
    return str(len(msg)).encode() + b" " + msg


def bsd(i: int, host: str = "h1") -> bytes:
    """A numbered RFC 3164 message the fast path parses."""
    return f"<13>Nov 27 12:00:00 {host} app[1]: message {i}".encode()


def tcp_send(port: int, payload: bytes, chunk: int = 0, source: str = "127.0.0.1") -> None:
    """Send `payload` over one TCP connection (in pieces of `chunk` bytes if given) and close it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        if chunk:
            for i in range(0, len(payload), chunk):
                s.sendall(payload[i : i + chunk])
        else:
            s.sendall(payload)


class ListenerProcess:
    """The daemon's TCP syslog listener in a subprocess with its own RLIMIT_NOFILE; asked for stats on stdin."""

    def __init__(self, nofile: int, tcp: dict[str, object]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(LISTENER), str(nofile), json.dumps(tcp)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stats(self) -> Counter[str]:
        """The listener's counters, events received and open descriptors (it answers: it is healthy)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the listener process died")
        return Counter(json.loads(line))

    def close(self) -> str:
        """Stop it; returns what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        return err
