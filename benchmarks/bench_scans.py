"""Cost of the scan detectors per event, on the pipeline benchmark's capture and on recorded scans.

Usage: python benchmarks/bench_scans.py [--packets N] [--runs N]

Prints events/s and microseconds per event for the packet decoder alone and for each scan detector
(portscan, scan_distributed, sweep) fed the decoded events; CPU time of this process (time.process_time),
best of --runs, so other work on the machine inflates the figures less than wall time would.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from watchstander.agent.config.detectors import DetectorsConfig
from watchstander.agent.demo.data import write_bench_pcap
from watchstander.agent.detection.detectors.base import Detector
from watchstander.agent.detection.detectors.portscan import PortScanDetector
from watchstander.agent.detection.detectors.scan_distributed import DistributedScanDetector
from watchstander.agent.detection.detectors.sweep import SweepDetector
from watchstander.connectors.events import Event
from watchstander.connectors.packets import read_packets

SCANS = Path(__file__).resolve().parents[1] / "tests" / "data" / "captures" / "scans"


def best(runs: int, work: Callable[[], int]) -> tuple[int, float]:
    """(items, best CPU seconds) of `runs` calls of `work`."""
    seconds, n = float("inf"), 0
    for _ in range(runs):
        began = time.process_time()
        n = work()
        seconds = min(seconds, time.process_time() - began)
    return n, seconds


def feed(cls: type[Detector], events: list[Event]) -> Callable[[], int]:
    """A fresh detector of `cls` fed every event of its kinds."""
    config = DetectorsConfig()

    def run() -> int:
        det = cls(getattr(config, cls.id), lambda f: None)
        for ev in events:
            if ev.kind in det.kinds:
                det.feed(ev)
        return len(events)
    return run


def report(label: str, n: int, seconds: float) -> None:
    """One line: rate and cost per event."""
    print(f"{label:<44} {n / seconds:>12,.0f} ev/s {seconds / n * 1e6:>8.2f} us/ev")


def main() -> None:
    """Build or reuse the capture, then time decoding and each scan detector."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "bench.pcap"
        write_bench_pcap(pcap, args.packets)
        report("decode (read_packets), bench capture", *best(args.runs, lambda: sum(1 for _ in read_packets(pcap))))
        events = list(read_packets(pcap))
    recorded = [ev for p in sorted(SCANS.glob("*.pcap")) for ev in read_packets(p)]
    for name, evs in (("bench capture", events), ("recorded scans", recorded)):
        for cls in (PortScanDetector, DistributedScanDetector, SweepDetector):
            report(f"{cls.id}, {name}", *best(args.runs, feed(cls, evs)))


if __name__ == "__main__":
    main()
