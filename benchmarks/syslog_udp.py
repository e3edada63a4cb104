"""UDP syslog intake: datagrams received against datagrams sent, at fixed rates, and CPU per message.

Usage: python benchmarks/syslog_udp.py [--quick] [--rates 50000,100000] [--seconds S] [--rcvbuf BYTES]
                                       [--every-line]

The receiver is the daemon's own `SyslogUdp` (drained a batch per wakeup, decoded by the syslog
parser, events consumed by a counting sink: intake and parse, no detection) on 127.0.0.1 in this
process, filtering with the registered detectors' `syslog_needs` as the daemon does (lines no
detector needs are counted `unneeded`), or building every line's Event with --every-line. A child process sends datagrams at the rate asked (paced every millisecond), numbered
sshd and generic lines. Per rate it prints: sent, received, kernel drops (from the socket), the
ratio received/sent, the rate actually sent, and the receiver's CPU time per message received.
Every datagram sent is received or counted in kernel_drops (the `check` column says so).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from watchstander.agent.daemon.syslog import SyslogUdp
from watchstander.agent.detection.pipeline import registered_syslog_needs
from watchstander.connectors.events import Event


class _Sink:
    """The loop and feed a source uses (the daemon's Sink, without importing the whole agent)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events = 0

    def feed(self, events: Iterable[Event]) -> None:
        """Count the events (this is where the parse happens: the iterator is lazy)."""
        for _ in events:
            self.events += 1


def _lines(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        if i % 2:
            out.append(f"<38>Nov 27 12:00:{i % 60:02d} gw{i % 7} sshd[{1000 + i % 50}]: Failed password for "
                       f"root from 10.0.{i % 250}.{i % 200 + 1} port {40000 + i % 2000} ssh2".encode())
        else:
            out.append(f"<13>Nov 27 12:00:{i % 60:02d} web{i % 5} nginx[77]: GET /index.html {i}".encode())
    return out


def _send(port: int, total: int, rate: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    import socket

    payloads = _lines(1000)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = ("127.0.0.1", port)
    sent = 0
    start = time.perf_counter()
    sendto = tx.sendto
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            sendto(payloads[sent % 1000], addr)
            sent += 1
        if sent < total:
            time.sleep(0.0005)
    out.put((sent, time.perf_counter() - start))


async def _measure(total: int, rate: int, rcvbuf: int, every_line: bool) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    sink = _Sink(loop)
    needs = None if every_line else registered_syslog_needs()
    source = SyslogUdp("127.0.0.1:0", lambda: datetime.now(UTC), 64 * 1024, rcvbuf, needs)
    await source.start(sink)
    assert source.bound is not None
    results: mp.Queue = mp.get_context("fork").Queue()  # type: ignore[type-arg]
    sender = mp.get_context("fork").Process(target=_send, args=(source.bound[1], total, rate, results))
    cpu0 = time.process_time()
    sender.start()
    while sender.is_alive():
        await asyncio.sleep(0.05)
    sent, took = results.get()
    sender.join()
    await asyncio.sleep(0.3)  # what is queued is read
    await source.stop()
    cpu = time.process_time() - cpu0
    received = source.counters["datagrams"]
    drops = source.counters["kernel_drops"]
    return {"rate": rate, "sent": sent, "received": received, "kernel_drops": drops,
            "ratio": received / sent, "sent_per_s": sent / took, "cpu_us_per_msg": cpu / max(received, 1) * 1e6,
            "events": sink.events + source.counters["unneeded"], "check": received + drops == sent, "rcvbuf": source.rcvbuf or 0}


def main() -> None:
    """Run each rate and print one row per rate."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one second per rate instead of ten")
    ap.add_argument("--rates", default="50000,100000")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--rcvbuf", type=int, default=8 * 1024 * 1024, help="[sources.udp] rcvbuf")
    ap.add_argument("--every-line", action="store_true", help="build an Event for every line (no syslog_needs)")
    args = ap.parse_args()
    seconds = args.seconds or (1.0 if args.quick else 10.0)
    print(f"{'rate/s':>8} {'sent':>9} {'received':>9} {'k.drops':>8} {'recv/sent':>9} {'sent/s':>9} "
          f"{'cpu µs/msg':>10} {'rcvbuf':>9} check")
    for rate in (int(r) for r in args.rates.split(",")):
        r = asyncio.run(_measure(int(rate * seconds), rate, args.rcvbuf, args.every_line))
        print(f"{r['rate']:>8.0f} {r['sent']:>9.0f} {r['received']:>9.0f} {r['kernel_drops']:>8.0f} "
              f"{r['ratio']:>9.4f} {r['sent_per_s']:>9.0f} {r['cpu_us_per_msg']:>10.2f} {r['rcvbuf']:>9.0f} "
              f"{'ok' if r['check'] else 'MISMATCH'}")


if __name__ == "__main__":
    main()
