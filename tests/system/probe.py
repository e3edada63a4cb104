"""Inside the container: send syslog brute-force bursts and count what the running daemon stored.

    probe.py send udp|tcp-lf|tcp-octet SRC N [PORT]
    probe.py count SRC                    -> failed logins stored for attacker SRC
    probe.py wait SRC N TIMEOUT_S         -> waits until at least N are stored; prints the count

Runs with the system's python3 (no project imports): it talks to the daemon the way a sysadmin
does, through the `watchstander` command.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time


def burst(src: str, n: int) -> list[bytes]:
    """N sshd failed-password lines from SRC, against a victim host named after SRC."""
    host = "host-" + src.replace(".", "-")
    return [f"<38>Dec  1 11:{i // 60:02d}:{i % 60:02d} {host} sshd[{100 + i}]: Failed password for root "
            f"from {src} port {40000 + i} ssh2".encode() for i in range(n)]


def send(kind: str, src: str, n: int, port: int) -> None:
    """Send the burst over UDP, TCP with LF framing, or TCP with RFC 6587 octet counting."""
    lines = burst(src, n)
    if kind == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for line in lines:
                s.sendto(line, ("127.0.0.1", port))
                time.sleep(0.001)  # loopback UDP is lossless at this pace; the test is not about load
        return
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        if kind == "tcp-lf":
            s.sendall(b"".join(line + b"\n" for line in lines))
        elif kind == "tcp-octet":
            s.sendall(b"".join(f"{len(line)} ".encode() + line for line in lines))
        else:
            raise SystemExit(f"unknown kind {kind}")
        s.shutdown(socket.SHUT_WR)


def count(src: str) -> int:
    """Failed logins stored in the incidents whose attacker is SRC (-1: the command failed)."""
    done = subprocess.run(["watchstander", "incidents", "list", "--format", "json"],
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-2000:])
        return -1
    total = 0
    for inc in json.loads(done.stdout or "[]"):
        if src in inc.get("entities", {}).get("attacker", []):
            total += int(inc.get("counts", {}).get("failed_logins", 0))
    return total


def main(argv: list[str]) -> int:
    """Entry point."""
    if argv[0] == "send":
        send(argv[1], argv[2], int(argv[3]), int(argv[4]) if len(argv) > 4 else 5514)
        return 0
    if argv[0] == "count":
        print(count(argv[1]))
        return 0
    if argv[0] == "wait":
        src, n, deadline = argv[1], int(argv[2]), time.monotonic() + float(argv[3])
        got = count(src)
        while got < n and time.monotonic() < deadline:
            time.sleep(1)
            got = count(src)
        print(got)
        return 0 if got >= n else 1
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
