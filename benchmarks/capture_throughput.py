"""Which live capture keeps up: the TPACKET_V3 ring, a drained plain recv, or scapy's L2ListenSocket.

Usage (root; makes and removes two network namespaces joined by a veth pair):

    python benchmarks/capture_throughput.py [--seconds 3] [--rates 50000,100000,0]
                                            [--methods ring,recv,scapy] [--stages raw,decode,daemon]

A sender (tests/support/packet_blaster.py, an AF_PACKET socket) in one namespace sends TCP SYNs at
each rate (0: as fast as it can) for `--seconds`; a receiver in the other namespace (this script
with --receive) captures them behind the BPF filter `tcp and src host SENDER` and reports frames
received and the kernel's PACKET_STATISTICS (frames seen, frames dropped). Stages:

- raw: frames only;
- decode: each frame through `PacketDecoder.decode`, the pcap reader's decoder;
- daemon: the daemon's `LiveCaptureSource` feeding the detectors (`Pipeline`) on an event loop.

Each row checks the accounting: sent = received + kernel drops. The machine is shared and has two
cores: sender, softirq and receiver compete for them, as a sensor's capture and its NIC would not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

PY = sys.executable
BLASTER = REPO / "tests" / "support" / "packet_blaster.py"
SOL_PACKET, PACKET_STATISTICS = 263, 6


def _receive(method: str, stage: str, interface: str, bpf: str) -> dict[str, Any]:
    """Capture until a line arrives on stdin, then drain for a moment and report."""
    from watchstander.connectors.events import Event
    from watchstander.connectors.live import CaptureOptions, LiveCapture, compile_bpf
    from watchstander.connectors.packets import LINK_ETHERNET, PacketDecoder
    from watchstander.connectors.skips import SkipCounter

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    skips = SkipCounter(logging.getLogger("bench"), "bench")
    decoder = PacketDecoder("bench", skips)
    cpu0 = time.process_time()

    if stage == "daemon":
        return _receive_daemon(method, interface, bpf, stop)

    decode: Callable[[bytes, int, float], list[Event]] | None = decoder.decode if stage == "decode" else None
    frames = events = 0
    if method == "scapy":
        from scapy.arch.linux import L2ListenSocket
        from scapy.error import Scapy_Exception

        sock = L2ListenSocket(iface=interface, filter=bpf)
        print("ready", flush=True)
        fd = sock.ins.fileno()
        quiet = 0
        while quiet < 3:
            if not select.select([fd], [], [], 0.2)[0]:
                quiet = quiet + 1 if stop.is_set() else 0
                continue
            try:
                _cls, data, ts = sock.recv_raw()
            except Scapy_Exception:
                continue
            if data is None:
                continue
            frames += 1
            if decode is not None:
                events += len(decode(data, LINK_ETHERNET, ts or time.time()))
        raw = sock.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        kernel, drops = struct.unpack("II", raw)
        sock.close()
    else:
        cap = LiveCapture(CaptureOptions(interface, program=compile_bpf(bpf), method=method, ring_bytes=32 << 20))
        print("ready", flush=True)
        quiet = 0
        while quiet < 3:
            batch = cap.read(0.2)
            if not batch:
                quiet = quiet + 1 if stop.is_set() else 0
                continue
            frames += len(batch)
            if decode is not None:
                for ts, data in batch:
                    events += len(decode(data, cap.linktype, ts))
        cap.close()
        kernel, drops = cap.stats.packets, cap.stats.drops
    return {"frames": frames, "events": events, "kernel_packets": kernel, "kernel_drops": drops,
            "cpu_s": round(time.process_time() - cpu0, 3)}


def _receive_daemon(method: str, interface: str, bpf: str, stop: threading.Event) -> dict[str, Any]:
    from watchstander.agent.config.capture import CaptureSource
    from watchstander.agent.config.detectors import DetectorsConfig
    from watchstander.agent.daemon.capture import LiveCaptureSource
    from watchstander.agent.daemon.sources import Sink
    from watchstander.agent.detection.pipeline import Pipeline

    cpu0 = time.process_time()

    async def run() -> dict[str, Any]:
        pipeline = Pipeline(DetectorsConfig())
        source = LiveCaptureSource(CaptureSource(interface=interface, bpf=bpf, method=method))  # type: ignore[arg-type]
        await source.start(Sink(asyncio.get_running_loop(), pipeline.feed_all))
        print("ready", flush=True)
        while not stop.is_set():
            await asyncio.sleep(0.1)
        last = -1
        while source.counters["frames"] != last:  # drained: nothing new for half a second
            last = source.counters["frames"]
            await asyncio.sleep(0.5)
        await source.stop()
        c = source.counters
        return {"frames": c["frames"], "events": pipeline.events, "findings": len(pipeline.findings),
                "kernel_packets": c["kernel_packets"], "kernel_drops": c["kernel_drops"]}

    out = asyncio.run(run())
    out["cpu_s"] = round(time.process_time() - cpu0, 3)
    return out


def _row(link: Any, sender: Any, receiver: Any, mac: str, method: str, stage: str,
         rate: int, seconds: float) -> dict[str, Any]:
    bpf = f"tcp and src host {link.left.ip}"
    count = int((rate or 400_000) * seconds)
    proc = receiver.popen([PY, __file__, "--receive", method, "--stage", stage, "--interface", "rcv0", "--bpf", bpf],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    if proc.stdout.readline().strip() != b"ready":
        raise RuntimeError(f"receiver {method}/{stage} did not start")
    sent = json.loads(sender.run([PY, str(BLASTER), "snd0", "--dst-mac", mac, "--src", str(link.left.ip),
                                  "--dst", str(link.right.ip), "--ports", "1-1000", "--count", str(count),
                                  "--rate", str(rate)], timeout=seconds * 20 + 60).stdout)
    proc.stdin.write(b"stop\n")
    proc.stdin.flush()
    got = json.loads(proc.stdout.readline())
    proc.wait(timeout=60)
    row = {"method": method, "stage": stage, "target_rate": rate or "max", "sent": sent["sent"],
           "send_rate": round(sent["sent"] / sent["seconds"]), **got}
    row["received_rate"] = round(got["frames"] / sent["seconds"])
    # What one core of receiver could take: frames per second of the receiver's own CPU time.
    row["per_cpu_s"] = round(got["frames"] / got["cpu_s"]) if got["cpu_s"] else 0
    row["accounted"] = got["frames"] + got["kernel_drops"] == sent["sent"]
    return row


def main() -> None:
    """Run the receiver (--receive) or the whole table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--receive", choices=("ring", "recv", "scapy"))
    p.add_argument("--stage", default="raw", choices=("raw", "decode", "daemon"))
    p.add_argument("--interface", default="rcv0")
    p.add_argument("--bpf", default="")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rates", default="50000,100000,0")
    p.add_argument("--methods", default="ring,recv,scapy")
    p.add_argument("--stages", default="raw,decode,daemon")
    args = p.parse_args()
    if args.receive:
        print(json.dumps(_receive(args.receive, args.stage, args.interface, args.bpf)), flush=True)
        return
    if os.geteuid() != 0:
        sys.exit("needs root: it makes network namespaces and packet sockets")
    from support.netns import Lab

    rows = []
    with Lab("capbench") as lab:
        sender, receiver = lab.namespace("snd"), lab.namespace("rcv")
        link = lab.veth(sender, receiver, left_name="snd0", right_name="rcv0")
        mac = receiver.run(["cat", "/sys/class/net/rcv0/address"]).stdout.strip()
        for stage in args.stages.split(","):
            for method in args.methods.split(","):
                if stage == "daemon" and method == "scapy":
                    continue  # the daemon's source reads with connectors.live only
                for rate in (int(r) for r in args.rates.split(",")):
                    row = _row(link, sender, receiver, mac, method, stage, rate, args.seconds)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(f"\n{'stage':7} {'method':6} {'target':>7} {'sent/s':>8} {'recv/s':>8} {'sent':>8} "
          f"{'received':>8} {'k.drops':>8} {'cpu s':>6} {'frames/cpu-s':>12} ok")
    for r in rows:
        print(f"{r['stage']:7} {r['method']:6} {r['target_rate']!s:>7} {r['send_rate']:>8} {r['received_rate']:>8} "
              f"{r['sent']:>8} {r['frames']:>8} {r['kernel_drops']:>8} {r['cpu_s']:>6} {r['per_cpu_s']:>12} {r['accounted']}")


if __name__ == "__main__":
    main()
