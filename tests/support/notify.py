"""A stand-in for systemd's notification socket: an AF_UNIX datagram socket the test binds and reads."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path


class NotifySocket:
    """Collects every sd_notify datagram with the monotonic time it arrived, on a thread of its own."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix=f"ws-notify-{os.getpid()}-", dir="/tmp")  # AF_UNIX paths stay short
        self.path = str(Path(self.dir) / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def states(self, prefix: str = "") -> list[tuple[float, str]]:
        """Every message received so far that starts with `prefix`."""
        with self._lock:
            return [(t, m) for t, m in self.messages if m.startswith(prefix)]

    def wait_for(self, prefix: str, timeout: float = 20.0) -> str:
        """The first message starting with `prefix`, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.states(prefix)
            if found:
                return found[0][1]
            time.sleep(0.02)
        raise AssertionError(f"no {prefix!r} notification in {timeout} s; got {self.states()}")

    def close(self) -> None:
        """Stop reading and remove the socket and its folder."""
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
        for name in (self.path, self.dir):
            try:
                os.unlink(name) if name == self.path else os.rmdir(name)
            except OSError:
                pass
