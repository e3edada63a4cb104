"""Flow records per second: NetFlow v5, v9 and IPFIX export decoded, and decoded + detected + correlated.

Usage: python benchmarks/netflow_throughput.py [--records N] [--runs N] [--quick] [--no-nfdump] [--versions v9,...]

The export datagrams are generated in memory (a fixed seed: 70 % TCP, 20 % UDP, 10 % ICMP between
65,536 clients and 1,000 servers; 300,000 distinct records, cycled over for longer inputs), then each measurement runs in a fresh interpreter (this script
re-invoked with --worker) so one stage's memory cannot inflate another's; the parent reads the child's
peak RSS with os.wait4. "decode" times FlowDecoder.decode over every datagram; "detect" feeds the
same Events through Pipeline(AgentConfig().detectors) and the Correlator, as bench_pipeline.py does.
Each detect stage runs at N and 2N records: peak RSS must not grow by more than 10 % (memory flat).
Below 300,000 records (--quick) the N run holds fewer distinct hosts than the 2N run, so its memory
check compares unlike inputs; the default 1,000,000 cycles the same pool at both sizes.
The reference is nfdump reading the same flows from a file nfcapd wrote when sent the v9 export.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CLOCK_AT = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
EXPORT_S = int(CLOCK_AT.timestamp()) - 60
TARGETS = {"decode": 500_000, "detect": 200_000}
FLAT_TOLERANCE = 0.10
V9_FIELDS = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 4), (1, 4), (22, 4), (21, 4), (10, 2), (14, 2),
             (5, 1), (16, 4), (17, 4))
V9_PER_PACKET = 30
BOOT_MS = (EXPORT_S - 86_400) * 1000
# bench_pipeline.py's capture: its parse rate on an idle machine is in benchmarks/README.md (582,967/s),
# so the ratio of today's rate to that says how busy the machine is while these figures are taken.
CALIBRATION_PCAP = Path(__file__).resolve().parent / "data" / "bench-pcap-100000.pcap"
CALIBRATION_IDLE_RATE = 582_967
POOL_RECORDS = 300_000  # distinct records generated; longer inputs cycle over them, so input memory is constant


def _flows(n: int, seed: int = 7) -> Iterator[tuple[bytes, bytes, int, int, int, int, int, int]]:
    rnd = random.Random(seed)
    servers = [struct.pack("!I", 0xC0A80000 + i) for i in range(1000)]
    for _ in range(n):
        r = rnd.random()
        proto = 6 if r < 0.7 else 17 if r < 0.9 else 1
        src = struct.pack("!I", 0x0A000000 + rnd.randrange(65536))
        dport = rnd.choice((22, 53, 80, 123, 443, 445, 3389, 8080)) if proto != 1 else 0x0800
        sport = rnd.randrange(1024, 65536) if proto != 1 else 0
        yield src, rnd.choice(servers), sport, dport, proto, 0x1B if proto == 6 else 0, rnd.randrange(1, 50), \
            rnd.randrange(40, 60000)


def v5_datagrams(n: int) -> list[bytes]:
    """NetFlow v5 datagrams of 30 records each, n records in all."""
    out: list[bytes] = []
    uptime = 86_400_000
    rec = struct.Struct("!4s4s4sHHIIIIHHBBBBHHBBH")
    batch: list[bytes] = []
    seq = 0
    for src, dst, sp, dp, pr, fl, pk, by in _flows(n):
        batch.append(rec.pack(src, dst, b"\0" * 4, 1, 2, pk, by, uptime - 5000, uptime - 1000, sp, dp, 0, fl, pr, 0,
                              0, 0, 24, 24, 0))
        if len(batch) == 30:
            out.append(struct.pack("!HHIIIIBBH", 5, 30, uptime, EXPORT_S, 0, seq, 0, 0, 0) + b"".join(batch))
            seq += 30
            batch = []
    if batch:
        out.append(struct.pack("!HHIIIIBBH", 5, len(batch), uptime, EXPORT_S, 0, seq, 0, 0, 0) + b"".join(batch))
    return out


def v9_datagrams(n: int) -> list[bytes]:
    """NetFlow v9 datagrams: a template set every 20 packets, 30 records of 15 fields (45 bytes) each."""
    tpl_body = struct.pack("!HH", 256, len(V9_FIELDS)) + b"".join(struct.pack("!HH", *f) for f in V9_FIELDS)
    tpl = struct.pack("!HH", 0, 4 + len(tpl_body)) + tpl_body
    rec = struct.Struct("!4s4sHHBBIIIIHHBII")
    uptime = (EXPORT_S * 1000) - BOOT_MS
    out: list[bytes] = []
    batch: list[bytes] = []
    for src, dst, sp, dp, pr, fl, pk, by in _flows(n):
        batch.append(rec.pack(src, dst, sp, dp, pr, fl, pk, by, uptime - 5000, uptime - 1000, 1, 2, 0, 64512, 64513))
        if len(batch) == V9_PER_PACKET:
            out.append(_v9_packet(len(out), batch, tpl))
            batch = []
    if batch:
        out.append(_v9_packet(len(out), batch, tpl))
    return out


def _v9_packet(seq: int, batch: list[bytes], tpl: bytes) -> bytes:
    body = b"".join(batch)
    data = struct.pack("!HH", 256, 4 + len(body)) + body
    sets = (tpl + data) if seq % 20 == 0 else data
    uptime = (EXPORT_S * 1000) - BOOT_MS
    return struct.pack("!HHIIII", 9, len(batch), uptime, EXPORT_S, seq, 0) + sets


def ipfix_datagrams(n: int) -> list[bytes]:
    """IPFIX messages: the v9 layout with millisecond end times (flowEndMilliseconds) instead of uptimes."""
    fields = tuple((153, 8) if ie == 21 else (152, 8) if ie == 22 else (ie, ln) for ie, ln in V9_FIELDS)
    tpl_body = struct.pack("!HH", 256, len(fields)) + b"".join(struct.pack("!HH", *f) for f in fields)
    tpl = struct.pack("!HH", 2, 4 + len(tpl_body)) + tpl_body
    rec = struct.Struct("!4s4sHHBBIIQQHHBII")
    end = EXPORT_S * 1000
    out: list[bytes] = []
    batch: list[bytes] = []
    records = 0
    for src, dst, sp, dp, pr, fl, pk, by in _flows(n):
        batch.append(rec.pack(src, dst, sp, dp, pr, fl, pk, by, end - 4000, end, 1, 2, 0, 64512, 64513))
        if len(batch) == V9_PER_PACKET or records + len(batch) == n:
            body = b"".join(batch)
            sets = (tpl if len(out) % 20 == 0 else b"") + struct.pack("!HH", 256, 4 + len(body)) + body
            out.append(struct.pack("!HHIII", 10, 16 + len(sets), EXPORT_S, records, 1) + sets)
            records += len(batch)
            batch = []
    return out


GENERATORS = {"v5": v5_datagrams, "v9": v9_datagrams, "ipfix": ipfix_datagrams}


# --------------------------------------------------------------------------- worker side

def run_worker(stage: str, records: int) -> int:
    """Run one stage once; print {"records", "events", "seconds", ...} as one JSON line."""
    import logging

    from watchstander.connectors.netflow import FlowDecoder
    from watchstander.connectors.skips import SkipCounter

    if stage == "pcap.calibrate":
        from watchstander.connectors.packets import read_packets

        c0, t0 = time.process_time(), time.perf_counter()
        n = sum(1 for _ in read_packets(CALIBRATION_PCAP))
        print(json.dumps({"records": n, "events": n, "seconds": time.perf_counter() - t0,
                          "cpu": time.process_time() - c0, "skipped": 0}))
        return 0
    version, what = stage.split(".")
    pool = GENERATORS[version](min(records, POOL_RECORDS))
    per_packet = min(records, POOL_RECORDS) / len(pool)
    packets = round(records / per_packet)
    datagrams = [pool[i % len(pool)] for i in range(packets)]  # references: the pool's memory only
    skips = SkipCounter(logging.getLogger("bench"), "bench")
    decoder = FlowDecoder(skips, lambda: CLOCK_AT)
    received = CLOCK_AT.timestamp()
    extra: dict[str, Any] = {}
    c0 = time.process_time()
    if what == "decode":
        t0 = time.perf_counter()
        n = 0
        decode = decoder.decode
        for d in datagrams:
            n += len(decode(d, "192.0.2.1", received))
        seconds = time.perf_counter() - t0
    else:
        from watchstander.agent.config.model import AgentConfig
        from watchstander.agent.detection.correlator import Correlator
        from watchstander.agent.detection.pipeline import Pipeline

        config = AgentConfig()
        pipeline = Pipeline(config.detectors)

        def events() -> Iterator[Any]:
            for d in datagrams:
                yield from decoder.decode(d, "192.0.2.1", received)

        t0 = time.perf_counter()
        n = pipeline.feed_all(events())
        incidents = Correlator(config.correlation.window_s).add_all(pipeline.findings)
        seconds = time.perf_counter() - t0
        extra = {"findings": len(pipeline.findings), "incidents": len(incidents)}
    cpu = time.process_time() - c0
    print(json.dumps({"records": records, "events": n, "seconds": seconds, "cpu": cpu, "skipped": skips.total,
                      **extra}))
    return 0


# --------------------------------------------------------------------------- parent side

def spawn_worker(stage: str, records: int) -> dict[str, Any]:
    """Run a stage in a fresh interpreter; its JSON line plus its peak RSS in MiB."""
    proc = subprocess.Popen([sys.executable, __file__, "--worker", stage, "--records", str(records)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"worker {stage} failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["rss_mib"] = usage.ru_maxrss / 1024
    return result


def nfdump_reference(records: int) -> str:
    """nfdump's own reading speed over the v9 export, collected by nfcapd; a line for the table."""
    nfcapd, nfdump = shutil.which("nfcapd"), shutil.which("nfdump")
    if nfcapd is None or nfdump is None:
        return "nfdump: skipped (apt-get install nfdump)"
    with tempfile.TemporaryDirectory(prefix="ws-nf-") as tmp:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([nfcapd, "-b", "127.0.0.1", "-p", str(port), "-w", tmp, "-t", "3600", "-B", "8388608"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for i, d in enumerate(v9_datagrams(records)):
                tx.sendto(d, ("127.0.0.1", port))
                if i % 50 == 49:
                    time.sleep(0.002)  # nfcapd is not the subject here: do not overrun it
        time.sleep(1.0)
        proc.terminate()
        proc.wait(30)
        files = [str(p) for p in Path(tmp).glob("nfcapd.*")]
        if not files:
            return "nfdump: skipped (nfcapd wrote no file)"
        best, got = float("inf"), 0
        for _ in range(3):
            t0 = time.perf_counter()
            out = subprocess.run([nfdump, "-R", tmp, "-q", "-o", "fmt:%sa %da %sp %dp %pr %flg %pkt %byt"],
                                 capture_output=True, text=True, check=True).stdout
            best = min(best, time.perf_counter() - t0)
            got = out.count("\n")
        return f"nfdump -R (fmt: 8 fields, spawn to exit)  {got:>10,} records  {best:7.2f} s  {got / best:>10,.0f}/s"


def main(argv: list[str] | None = None) -> int:
    """Measure every stage and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200,000 records, one run")
    ap.add_argument("--no-nfdump", action="store_true")
    ap.add_argument("--versions", default="v5,v9,ipfix", help="export formats to measure (comma-separated)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    records = args.records or (200_000 if args.quick else 1_000_000)
    if args.worker:
        return run_worker(args.worker, records)
    runs = 1 if args.quick else args.runs
    print(f"python  : {sys.version.split()[0]}   nproc {os.cpu_count()}   load {os.getloadavg()[0]:.2f}")
    print(f"records : {records:,} per stage (detect stages also at {2 * records:,}: memory check); best of {runs}")
    print(f"{'stage':<28}{'records':>12}{'seconds':>9}{'records/s':>12}{'per cpu s':>12}{'peak RSS MiB':>14}"
          f"{'target/s':>10}  result")
    failed: list[str] = []
    versions = [v for v in args.versions.split(",") if v]
    unknown = set(versions) - GENERATORS.keys()
    if unknown:
        ap.error(f"unknown --versions {', '.join(sorted(unknown))}: choose from {', '.join(GENERATORS)}")
    for version in versions:
        for what in ("decode", "detect"):
            stage = f"{version}.{what}"
            sizes = (records, 2 * records) if what == "detect" else (records,)
            peaks: list[float] = []
            for size in sizes:
                results = [spawn_worker(stage, size) for _ in range(runs)]
                best = min(results, key=lambda r: r["seconds"])
                assert best["skipped"] == 0, best
                size = best["events"]  # whole datagrams: within one datagram of the records asked for
                rate = size / best["seconds"]
                cpu_rate = size / min(r["cpu"] for r in results)
                peak = max(r["rss_mib"] for r in results)
                peaks.append(peak)
                target = TARGETS[what]
                ok = rate >= target
                if not ok:
                    failed.append(f"{stage} at {size:,}: {rate:,.0f}/s < {target:,}/s")
                note = f"  findings {best['findings']}, incidents {best['incidents']}" if "findings" in best else ""
                print(f"{stage:<28}{size:>12,}{best['seconds']:>9.2f}{rate:>12,.0f}{cpu_rate:>12,.0f}{peak:>14.1f}"
                      f"{target:>10,}  "
                      f"{'PASS' if ok else 'FAIL'}{note}")
            if len(peaks) == 2:
                growth = peaks[1] / peaks[0] - 1
                flat = growth <= FLAT_TOLERANCE
                if not flat:
                    failed.append(f"{stage}: peak RSS grew {growth:.0%} when the input doubled")
                print(f"{'  memory when input doubles':<28}{'':>12}{'':>9}{'':>12}{'':>12}{growth:>+13.1%} {'':>10}  "
                      f"{'FLAT' if flat else 'GROWS'}")
    if CALIBRATION_PCAP.exists():
        cal = min((spawn_worker("pcap.calibrate", 0) for _ in range(runs)), key=lambda r: r["seconds"])
        rate = cal["events"] / cal["seconds"]
        print(f"{'pcap parse (calibration)':<28}{cal['events']:>12,}{cal['seconds']:>9.2f}{rate:>12,.0f}"
              f"{cal['events'] / cal['cpu']:>12,.0f}   idle machine: {CALIBRATION_IDLE_RATE:,}/s "
              f"(this run at {rate / CALIBRATION_IDLE_RATE:.0%} of that)")
    else:
        print("pcap parse (calibration): skipped (run benchmarks/bench_pipeline.py once to write its capture)")
    if not args.no_nfdump:
        print(nfdump_reference(min(records, 300_000)))
    print("FAILED: " + "; ".join(failed) if failed else "all targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
