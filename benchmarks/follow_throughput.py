"""How fast a followed file reaches detection: MB/s from append to the last line through the detectors.

Usage: python benchmarks/follow_throughput.py [--mb 200] [--quick] [--impl FILE] [--chunk BYTES] [--no-detect]

A syslog file of `--mb` megabytes (the bench auth log: ordinary lines and guessing campaigns) is
generated, then appended to an empty followed file by a writer thread while a FollowedFile feeds
the real detection pipeline on the event loop. Timed from the first appended byte to the moment
every line has been through the detectors. Also printed: the longest the event loop went without
running other tasks (what other sources wait at worst), and the process's peak RSS.

`--impl FILE` loads FollowedFile from another follow.py (the one before issue 9, say:
`git show HEAD~1:agent/daemon/follow.py > /tmp/old_follow.py`) to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watchstander.agent.clock import fixed_clock
from watchstander.agent.config.load import validate_config
from watchstander.agent.daemon import follow
from watchstander.agent.daemon.sources import Sink
from watchstander.agent.demo.data import write_bench_syslog
from watchstander.agent.detection.pipeline import Pipeline
from watchstander.connectors.events import Event

BENCH_START = 1.7e9
CLOCK_AT = datetime.fromtimestamp(BENCH_START, UTC) + timedelta(days=1)
BYTES_PER_LINE = 95  # about, for the bench auth log
WRITE_BLOCK = 8 * 1024 * 1024


def load_impl(path: str | None) -> Any:
    """FollowedFile from `path` (a follow.py), or this tree's."""
    if path is None:
        return follow.FollowedFile
    spec = importlib.util.spec_from_file_location("watchstander.agent.daemon._bench_follow", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.FollowedFile


def append(src: Path, dst: Path) -> None:
    """Append src to dst in blocks, as a busy writer would."""
    with open(src, "rb") as fin, open(dst, "ab") as fout:
        while block := fin.read(WRITE_BLOCK):
            fout.write(block)
            fout.flush()


async def measure(impl: Any, src: Path, dst: Path, lines: int, chunk: int | None,
                  detect: bool = True) -> dict[str, float]:
    """Follow dst while src is appended to it; the figures of one run."""
    clock = fixed_clock(CLOCK_AT)
    pipeline = Pipeline(validate_config({}).detectors)
    events = 0

    def feed(evs: Any) -> None:
        nonlocal events
        if not detect:
            return  # the reading ceiling: lines are split and handed over, never decoded
        batch: list[Event] = list(evs)
        events += len(batch)
        pipeline.feed_all(batch)

    kwargs: dict[str, Any] = {"interval": follow.FOLLOW_INTERVAL_S}
    if chunk is not None:
        kwargs["chunk"] = chunk
    follower = impl(dst, clock, **kwargs)
    loop = asyncio.get_running_loop()
    await follower.start(Sink(loop, feed))
    await asyncio.sleep(1.5)  # the follower has looked at the (empty) file once

    stall = 0.0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal stall
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            stall = max(stall, time.perf_counter() - t - 0.005)

    probing = asyncio.create_task(probe())
    t0 = time.perf_counter()
    writer = loop.run_in_executor(None, append, src, dst)
    while follower.counters["lines"] < lines:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    await writer
    done.set()
    await probing
    await follower.stop()
    size = dst.stat().st_size
    return {"mb": size / 1e6, "lines": lines, "events": events, "seconds": elapsed,
            "mb_per_s": size / 1e6 / elapsed, "lines_per_s": lines / elapsed,
            "max_loop_stall_ms": stall * 1000, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=200.0, help="size of the appended syslog, MB")
    ap.add_argument("--quick", action="store_true", help="20 MB instead of 200")
    ap.add_argument("--impl", help="a follow.py to take FollowedFile from (default: this tree's)")
    ap.add_argument("--chunk", type=int, help="read size per round (this tree's follower only)")
    ap.add_argument("--no-detect", action="store_true", help="hand lines over undecoded: the follower's own ceiling")
    args = ap.parse_args(argv)
    mb = 20.0 if args.quick else args.mb
    impl = load_impl(args.impl)
    with tempfile.TemporaryDirectory(prefix="follow-bench-") as tmp:
        src, dst = Path(tmp) / "source.log", Path(tmp) / "auth.log"
        t = time.perf_counter()
        lines = write_bench_syslog(src, int(mb * 1e6 / BYTES_PER_LINE), start=BENCH_START)
        print(f"generated {src.stat().st_size / 1e6:.0f} MB, {lines} lines in {time.perf_counter() - t:.1f} s")
        dst.write_bytes(b"")
        figures = asyncio.run(measure(impl, src, dst, lines, args.chunk, detect=not args.no_detect))
    print(f"implementation: {args.impl or 'this tree'}{' (no detection)' if args.no_detect else ''}")
    for key, value in figures.items():
        print(f"  {key:18} {value:,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
