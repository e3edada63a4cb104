"""Seeded mutation fuzzing of every reader: cases run, crashes and hangs, per target.

    python benchmarks/fuzz_readers.py [--cases 100000] [--seed 1] [--hang-s 2] [--target NAME ...]

Each case takes a real sample (the demo's capture written as pcap and pcapng, the annotated syslog,
EVE and DNS-name samples in tests/data/samples, a full config, control-socket requests), applies
1-8 random byte mutations (flip, insert, delete, duplicate a slice, splice a hostile token) and
runs the reader to the end. A crash is any exception other than the reader's documented error
type; a hang is a case slower than --hang-s. Crashing inputs are written to --out for replay.
The cases are split evenly over the targets; the figures printed are what the issue asks for.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, PcapWriter

from watchstander.agent.config.load import load_config
from watchstander.agent.control.errors import ControlError
from watchstander.agent.control.protocol import decode_request
from watchstander.agent.demo.data import demo_packets
from watchstander.agent.errors import ConfigError
from watchstander.connectors.errors import SourceError
from watchstander.connectors.formats import FORMATS
from watchstander.connectors.skips import SkipCounter

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests" / "data" / "samples"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
HOSTILE = [b"\x00", b"\xff\xff\xff\xff", b"\x1b[2J", b"\xe2\x80\xae", b"\\ud800", b"9999-12-31T23:59:59-14:00",
           b"[" * 3000, b"{" * 3000, b"1" * 5000, b"\n", b"\r\n", b"%s%n", b"\xf0\x9f\x92\xa9", b'"', b"-1"]

log = logging.getLogger("fuzz")


def _capture(kind: str, tmp: Path) -> bytes:
    path = tmp / f"seed.{kind}"
    writer = (PcapNgWriter if kind == "pcapng" else PcapWriter)(str(path))
    for ts, frame in demo_packets(NOW.timestamp() - 600, benign_connections=5, seed=3)[:200]:
        pkt = Ether(frame)
        pkt.time = ts
        writer.write(pkt)
    writer.close()
    return path.read_bytes()


def _config() -> bytes:
    return (b'[store]\nurl = "sqlite:///tmp/x.db"\n[sources]\nsyslog_udp = ["127.0.0.1:5514"]\nflush_s = 5\n'
            b'[[assets]]\ncidr = "10.0.0.0/8"\nname = "lan"\nprotected = true\n[policy]\nautonomy = "recommend"\n'
            b'[policy.rate_limits]\nnotify-webhook = 3\n[triage]\nmodel = "builtin"\n[control.roles]\nadmin = ["wheel"]\n')


def mutate(data: bytes, rng: random.Random) -> bytes:
    """1-8 random mutations of `data`."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2 and buf:
            del buf[pos:pos + rng.randint(1, 64)]
        elif op == 3 and buf:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start:start + rng.randint(1, 256)]
        else:
            buf[pos:pos] = rng.choice(HOSTILE)
    return bytes(buf)


def _file_reader(fmt: str, tmp: Path) -> Callable[[bytes], None]:
    path = tmp / f"case.{fmt}"
    skips = SkipCounter(log, "fuzz")

    def run(data: bytes) -> None:
        path.write_bytes(data)
        for _ in FORMATS[fmt].read_file(path, lambda: NOW, skips):
            pass
    return run


def _config_reader(tmp: Path) -> Callable[[bytes], None]:
    path = tmp / "case.toml"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        path.chmod(0o600)
        load_config(path)  # the real loading path: read, merge, validate
    return run


def _control_reader(data: bytes) -> None:
    for line in data.split(b"\n"):
        try:
            decode_request(line)
        except ControlError:
            pass


def targets(tmp: Path) -> dict[str, tuple[bytes, Callable[[bytes], None], tuple[type[BaseException], ...]]]:
    """name -> (seed input, reader, the errors the reader documents)."""
    return {
        "pcap": (_capture("pcap", tmp), _file_reader("pcap", tmp), (SourceError,)),
        "pcapng": (_capture("pcapng", tmp), _file_reader("pcap", tmp), (SourceError,)),
        "syslog": ((SAMPLES / "syslog-mixed.log").read_bytes(), _file_reader("syslog", tmp), (SourceError,)),
        "eve": ((SAMPLES / "eve-mixed.json").read_bytes(), _file_reader("eve", tmp), (SourceError,)),
        "dnsnames": ((SAMPLES / "dnsnames.csv").read_bytes(), _file_reader("dnsnames", tmp), (SourceError,)),
        "config": (_config(), _config_reader(tmp), (ConfigError,)),
        "control": (b'{"id": 1, "method": "suggestions.list", "params": {"limit": 5}}\n'
                    b'{"id": "x", "method": "ping", "params": {}}\n', _control_reader, (ControlError,)),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the campaign and print the figures; exit 1 when anything crashed or hung."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000, help="total mutated cases over all targets")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hang-s", type=float, default=2.0, help="a case slower than this counts as a hang")
    ap.add_argument("--target", action="append", help="only these targets (repeatable)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "data" / "fuzz-crashes")
    args = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)  # skipped records are counted, not logged, here
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="ws-fuzz-") as tmp:
        table = targets(Path(tmp))
        names = args.target or list(table)
        per = max(1, args.cases // len(names))
        total_crashes = total_hangs = 0
        print(f"{'target':<10} {'cases':>8} {'crashes':>8} {'hangs':>6} {'slowest s':>10} {'cases/s':>9}")
        for name in names:
            seed_input, reader, expected = table[name]
            crashes = hangs = 0
            slowest = 0.0
            t0 = time.perf_counter()
            for i in range(per):
                data = mutate(seed_input, rng)
                c0 = time.perf_counter()
                try:
                    reader(data)
                except expected:
                    pass
                except Exception:  # a crash: what the campaign is looking for
                    crashes += 1
                    args.out.mkdir(parents=True, exist_ok=True)
                    (args.out / f"{name}-{i}.bin").write_bytes(data)
                    if crashes <= 3:
                        print(f"  crash in {name} case {i}:\n{traceback.format_exc(limit=3)}", file=sys.stderr)
                spent = time.perf_counter() - c0
                slowest = max(slowest, spent)
                if spent > args.hang_s:
                    hangs += 1
            rate = per / (time.perf_counter() - t0)
            print(f"{name:<10} {per:>8,} {crashes:>8} {hangs:>6} {slowest:>10.3f} {rate:>9,.0f}")
            total_crashes += crashes
            total_hangs += hangs
        print(f"total: {per * len(names):,} cases, {total_crashes} crashes, {total_hangs} hangs")
    return 1 if total_crashes or total_hangs else 0


if __name__ == "__main__":
    sys.exit(main())
