"""Throughput and memory of the behaviour detectors (beacon, exfil, lateral, snmp_abuse) on flow
records, and the beacon detector's hit and false-alarm rates.

Usage: python benchmarks/behaviour_detectors.py [--flows N] [--trials N]

Throughput: N flow records as the NetFlow and Zeek connectors give them (internal hosts talking to
many external and internal addresses, a share on admin ports and udp/161), fed to each detector
alone; the detector's table sizes and the process's peak RSS growth are printed beside the rate.
Rates: seeded trials of a +-20 % jitter beacon (12 and 20 beats) and of Poisson arrivals
(80 connections, mean 60 s) through the default beacon config.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watchstander.agent.config.detectors import DetectorsConfig
from watchstander.agent.detection.detectors.registry import DETECTORS
from watchstander.connectors.events import ACK, NETWORK, PSH, SYN, Event

MINE = ("beacon", "exfil", "lateral", "snmp_abuse")
REFERENCE = ("portscan", "bruteforce")  # existing detectors on the same records, for scale


def flows(n: int, seed: int = 1) -> list[Event]:
    """n flow records in time order from 2,000 internal hosts."""
    rng = random.Random(seed)
    out = []
    t = 1_700_000_000.0
    for i in range(n):
        t += rng.expovariate(2000.0)
        src = f"10.{rng.randrange(4)}.{rng.randrange(20)}.{rng.randrange(1, 26)}"
        r = rng.random()
        if r < 0.05:
            dst, dport = f"10.0.{rng.randrange(20)}.{rng.randrange(1, 26)}", rng.choice((22, 445, 3389, 5985))
        elif r < 0.07:
            dst, dport = f"10.9.{rng.randrange(4)}.{rng.randrange(1, 255)}", 161
        else:
            dst, dport = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}", \
                rng.choice((443, 443, 443, 80, 53, 123, 8443, 25))
        proto = "udp" if dport in (53, 123, 161) else "tcp"
        nbytes = int(rng.lognormvariate(7, 2))
        out.append(Event(t, "netflow", NETWORK, src, dst, 1024 + i % 60000, dport, proto,
                         SYN | ACK | PSH if proto == "tcp" else 0,
                         attrs={"flow": True, "packets": max(1, nbytes // 1000), "bytes": nbytes, "duration": 1.0,
                                "orig_bytes": nbytes, "resp_bytes": nbytes // 3}))
    return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(n: int) -> None:
    events = flows(n)
    config = DetectorsConfig()
    print(f"{n} flow records, {len(DETECTORS)} detectors registered")
    for det_id in MINE + REFERENCE:
        det: Any = DETECTORS[det_id](getattr(config, det_id), lambda f: None)
        before = rss_mb()
        t0 = time.perf_counter()
        for ev in events:
            det.feed(ev)
        dt = time.perf_counter() - t0
        sizes = {k: len(v) for k, v in vars(det).items() if hasattr(v, "__len__") and not isinstance(v, str)}
        print(f"  {det_id:<11} {n / dt:>12,.0f} flows/s   peak RSS +{rss_mb() - before:6.1f} MB   tables {sizes}")


def beacon_rates(trials: int) -> None:
    config = DetectorsConfig().beacon
    cls = DETECTORS["beacon"]

    def fires(times: list[float]) -> bool:
        found: list[Any] = []
        det = cls(config, found.append)
        for i, t in enumerate(times):
            det.feed(Event(t, "p", NETWORK, "10.0.0.7", "203.0.113.5", 40000 + i, 443, "tcp", SYN))
        return bool(found)

    for beats in (12, 20):
        hits = 0
        for seed in range(trials):
            rng, t, times = random.Random(seed), 1.7e9, []
            for _ in range(beats):
                times.append(t)
                t += 60 * (1 + rng.uniform(-0.2, 0.2))
            hits += fires(times)
        print(f"  beacon +-20 % jitter, {beats} beats: found in {hits / trials:.1%} of {trials} trials")
    alarms = 0
    for seed in range(trials):
        rng, t, times = random.Random(seed), 1.7e9, []
        for _ in range(80):
            times.append(t)
            t += rng.expovariate(1 / 60)
        alarms += fires(times)
    print(f"  Poisson arrivals, 80 connections: reported in {alarms / trials:.1%} of {trials} trials")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=500_000)
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    throughput(args.flows)
    beacon_rates(args.trials)


if __name__ == "__main__":
    main()
