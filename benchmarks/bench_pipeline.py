"""Throughput and peak memory of the pcap and syslog paths, with tshark and fail2ban-regex as references.

Usage: python benchmarks/bench_pipeline.py [--packets N] [--lines N] [--quick] [--runs N] [--data DIR]
                                          [--only syslog.parse,syslog.e2e]

Every measurement runs in a fresh subprocess (this script re-invoked with --worker), so that one
stage's memory cannot inflate another's peak RSS. The worker times only the work itself (imports and
interpreter start-up excluded); the parent reads the child's peak RSS from os.wait4. Reference tools
are timed from spawn to exit, since that is what a user of them waits for.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "benchmarks" / "data"

DEFAULT_PACKETS = 200_000
DEFAULT_LINES = 1_000_000
QUICK_DIVISOR = 10  # --quick without explicit sizes: a tenth of the full inputs, one run each

# The generators start at this epoch (write_bench_pcap/write_bench_syslog default); the syslog
# parser infers the year of "Nov 14 22:13:20" from the clock, so the clock sits just after it.
BENCH_START = 1.7e9
CLOCK_AT = datetime.fromtimestamp(BENCH_START, timezone.utc) + timedelta(days=1)

# packets or lines per second the issue asks for
TARGETS: dict[str, int] = {
    "pcap.parse": 300_000,
    "pcap.e2e": 100_000,
    "syslog.parse": 400_000,
    "syslog.e2e": 150_000,
}
# Peak RSS at the full input may exceed the peak at half the input by at most this fraction.
FLAT_TOLERANCE = 0.10

SAMPLE_S = 0.01  # how often the parent samples a child's RssAnon

TSHARK_FIELDS = ("ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "tcp.flags")
FAIL2BAN_SSHD = Path("/etc/fail2ban/filter.d/sshd.conf")

STAGE_LABELS = {
    "pcap.parse": "pcap parse (read_packets)",
    "pcap.e2e": "pcap parse+detect+correlate",
    "pcap.replay": "pcap replay (+triage, SQLite)",
    "syslog.parse": "syslog parse (read_syslog)",
    "syslog.e2e": "syslog parse+detect+correlate",
    "syslog.replay": "syslog replay (+triage, SQLite)",
    "idle": "interpreter + imports only",
    "tshark": "tshark -T fields (5 fields)",
    "fail2ban": "fail2ban-regex sshd.conf",
}


# --------------------------------------------------------------------------- worker side

def _clock() -> datetime:
    return CLOCK_AT


def _events(kind: str, path: Path) -> Any:
    if kind == "pcap":
        from watchstander.connectors.packets import read_packets

        return read_packets(path)
    from watchstander.connectors.syslog import read_syslog

    return read_syslog(path, now=_clock)


def _work_parse(kind: str, path: Path) -> tuple[int, dict[str, Any]]:
    n = 0
    for _ in _events(kind, path):
        n += 1
    return n, {}


def _work_e2e(kind: str, path: Path) -> tuple[int, dict[str, Any]]:
    from watchstander.agent.config.model import AgentConfig
    from watchstander.agent.detection.correlator import Correlator
    from watchstander.agent.detection.pipeline import Pipeline

    config = AgentConfig()
    pipeline = Pipeline(config.detectors)
    n = pipeline.feed_all(_events(kind, path))
    incidents = Correlator(config.correlation.window_s).add_all(pipeline.findings)
    return n, {"findings": len(pipeline.findings), "incidents": len(incidents),
               "detector_failures": sum(pipeline.failures.values())}


def _work_replay(kind: str, path: Path, store_dir: Path) -> tuple[int, dict[str, Any]]:
    from watchstander.agent.app.replay import replay
    from watchstander.agent.app.wiring import App
    from watchstander.agent.config.model import AgentConfig
    from watchstander.agent.store.schema import open_store

    store = open_store(f"sqlite:///{store_dir / 'bench.db'}")
    try:
        t0 = time.perf_counter()
        report = replay(App(AgentConfig(), store, _clock), [path], "benchmark")
        seconds = time.perf_counter() - t0
    finally:
        store.close()
    return report.events, {"findings": report.findings, "incidents": len(report.incidents), "_seconds": seconds}


def _preload(stage: str) -> None:
    """Import what a stage needs before the clock starts."""
    import watchstander.connectors.packets  # noqa: F401
    import watchstander.connectors.syslog  # noqa: F401

    if stage != "idle":
        import watchstander.agent.detection.correlator  # noqa: F401
        import watchstander.agent.detection.pipeline  # noqa: F401
    if stage.endswith(".replay"):
        import watchstander.agent.app.replay  # noqa: F401
        import watchstander.agent.store.engine  # noqa: F401


def run_worker(stage: str, path: Path) -> int:
    """Run one stage once and print {"events", "seconds", ...} as one JSON line."""
    _preload(stage)
    if stage == "idle":
        print(json.dumps({"events": 0, "seconds": 0.0, "cpu": 0.0}))
        return 0
    kind, what = stage.split(".")
    t0, c0 = time.perf_counter(), time.process_time()
    if what == "parse":
        n, extra = _work_parse(kind, path)
    elif what == "e2e":
        n, extra = _work_e2e(kind, path)
    elif what == "replay":
        with tempfile.TemporaryDirectory(prefix="ws-bench-") as tmp:
            n, extra = _work_replay(kind, path, Path(tmp))
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    seconds = extra.pop("_seconds", time.perf_counter() - t0)
    print(json.dumps({"events": n, "seconds": seconds, "cpu": time.process_time() - c0, **extra}))
    return 0


# --------------------------------------------------------------------------- parent side

@dataclass
class Result:
    """One stage or reference tool measured over one or more runs."""

    stage: str
    input_desc: str
    records: int = 0  # packets or lines in the input: the unit of the rate and the target
    events: int | None = None
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    anon_kib: list[int] = field(default_factory=list)
    target: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def best(self) -> float | None:
        """Fastest run in seconds."""
        return min(self.seconds) if self.seconds else None

    @property
    def rate(self) -> float | None:
        """Input records (packets or lines) per second of the fastest run."""
        best = self.best
        return self.records / best if best and self.records else None

    @property
    def best_cpu(self) -> float | None:
        """Least CPU time (user + system) over the runs."""
        return min(self.cpu) if self.cpu else None

    @property
    def peak_mib(self) -> float | None:
        """Highest peak RSS over the runs, in MiB."""
        return max(self.rss_kib) / 1024 if self.rss_kib else None

    @property
    def anon_mib(self) -> float | None:
        """Highest sampled anonymous memory over the runs, in MiB."""
        return max(self.anon_kib) / 1024 if self.anon_kib else None

    @property
    def verdict(self) -> str:
        """PASS, FAIL or '-' when the stage has no target."""
        if self.target is None or self.rate is None:
            return "-"
        return "PASS" if self.rate >= self.target else "FAIL"


def _anon_kib(pid: int) -> int | None:
    """RssAnon of a running process (heap and stacks, without file-backed pages), or None once gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Run:
    """One finished child process."""

    wall: float
    code: int
    rss_kib: int
    anon_kib: int
    cpu: float
    out: str
    err: str


def spawn(argv: Sequence[str], capture: bool) -> Run:
    """Run argv to completion, sampling its anonymous memory; returns wall time, exit code, peaks, output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=out if capture else subprocess.DEVNULL, stderr=err)
        anon = 0
        while True:
            # wait4 rather than proc.wait(): it hands back this child's own rusage (peak RSS).
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            anon = max(anon, _anon_kib(proc.pid) or 0)
            time.sleep(SAMPLE_S)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(wall, proc.returncode, int(usage.ru_maxrss), anon, usage.ru_utime + usage.ru_stime,
                   out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def measure_stage(stage: str, path: Path | None, records: int, input_desc: str, runs: int,
                  target: int | None = None) -> Result:
    """Best-of-`runs` of one pipeline stage, each run in a fresh interpreter."""
    res = Result(stage, input_desc, records, target=target)
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", stage, str(path or "-")]
    for _ in range(runs):
        run = spawn(argv, capture=True)
        if run.code != 0:
            raise SystemExit(f"stage {stage} failed (exit {run.code}):\n{run.err[-4000:]}")
        data = json.loads(run.out.strip().splitlines()[-1])
        res.events = int(data.pop("events"))
        res.seconds.append(float(data.pop("seconds")))
        res.cpu.append(float(data.pop("cpu")))
        res.rss_kib.append(run.rss_kib)
        res.anon_kib.append(run.anon_kib)
        res.extra = data
    return res


def measure_tshark(path: Path, packets: int, input_desc: str, runs: int) -> Result:
    """tshark reading the capture and printing five header fields to /dev/null."""
    res = Result("tshark", input_desc, packets)
    exe = shutil.which("tshark")
    if exe is None:
        res.skipped = "skipped: tshark not installed (apt-get install tshark)"
        return res
    argv = [exe, "-r", str(path), "-T", "fields"]
    for f in TSHARK_FIELDS:
        argv += ["-e", f]
    for _ in range(runs):
        run = spawn(argv, capture=False)
        if run.code != 0:
            res.skipped = f"skipped: tshark exited {run.code}: {run.err.strip()[-300:]}"
            return res
        res.seconds.append(run.wall)
        res.cpu.append(run.cpu)
        res.rss_kib.append(run.rss_kib)
        res.anon_kib.append(run.anon_kib)
    res.events = packets
    return res


def measure_fail2ban(path: Path, lines: int, input_desc: str, runs: int) -> Result:
    """fail2ban-regex with the stock sshd filter over the whole auth log."""
    res = Result("fail2ban", input_desc, lines)
    exe = shutil.which("fail2ban-regex")
    if exe is None:
        res.skipped = "skipped: fail2ban-regex not installed (apt-get install fail2ban)"
        return res
    if not FAIL2BAN_SSHD.is_file():
        res.skipped = f"skipped: {FAIL2BAN_SSHD} not found"
        return res
    argv = [exe, str(path), str(FAIL2BAN_SSHD)]
    for _ in range(runs):
        run = spawn(argv, capture=True)
        if run.code != 0:
            res.skipped = f"skipped: fail2ban-regex exited {run.code}: {run.err.strip()[-300:]}"
            return res
        res.seconds.append(run.wall)
        res.cpu.append(run.cpu)
        res.rss_kib.append(run.rss_kib)
        res.anon_kib.append(run.anon_kib)
        for line in run.out.splitlines():
            if line.startswith("Lines: "):  # "Lines: N lines, I ignored, M matched, X missed"
                res.extra["summary"] = line[len("Lines: "):].strip()
    res.events = lines
    return res


# --------------------------------------------------------------------------- inputs

def _generator_digest() -> str:
    from watchstander.agent.demo import data as demo_data

    return hashlib.sha256(Path(demo_data.__file__).read_bytes()).hexdigest()[:16]


def cached_input(data_dir: Path, kind: str, size: int, log: Callable[[str], None]) -> tuple[Path, int]:
    """Generate (or reuse) a benchmark input; returns (path, records actually written).

    A file is reused when its sidecar records the same requested size, the same generator source
    and the file's current byte size.
    """
    from watchstander.agent.demo.data import write_bench_pcap, write_bench_syslog

    suffix = "pcap" if kind == "pcap" else "log"
    path = data_dir / f"bench-{kind}-{size}.{suffix}"
    meta_path = path.with_suffix(path.suffix + ".json")
    digest = _generator_digest()
    if path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("requested") == size and meta.get("generator") == digest \
                and meta.get("bytes") == path.stat().st_size:
            log(f"  reusing {path.relative_to(data_dir.parent) if path.is_relative_to(data_dir.parent) else path}")
            return path, int(meta["written"])
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    t0 = time.perf_counter()
    written = write_bench_pcap(tmp, size) if kind == "pcap" else write_bench_syslog(tmp, size)
    tmp.replace(path)
    meta_path.write_text(json.dumps({"requested": size, "written": written, "generator": digest,
                                     "bytes": path.stat().st_size}) + "\n")
    log(f"  generated {path.name}: {written:,} records in {time.perf_counter() - t0:.1f} s")
    return path, written


# --------------------------------------------------------------------------- report

def _tool_version(argv: list[str]) -> str:
    exe = shutil.which(argv[0])
    if exe is None:
        return "not installed"
    try:
        out = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) at start"


def tree_state() -> str:
    """HEAD, and whether the code under test has uncommitted changes (others may be editing it)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "connectors", "agent"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown (git not found)"
    return f"{head}{' (connectors/agent modified)' if dirty else ''}"


def machine_lines() -> list[str]:
    """What this run ran on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        import scapy

        scapy_version = scapy.__version__
    except ImportError:
        scapy_version = "not installed"
    commit = tree_state()
    return [
        f"machine : nproc {usable} (cpu_count {os.cpu_count()}), {cpu}",
        f"os      : {platform.platform()}",
        f"python  : {platform.python_implementation()} {platform.python_version()}, scapy {scapy_version}",
        f"tools   : {_tool_version(['tshark', '--version'])}; {_tool_version(['fail2ban-regex', '--version'])}",
        f"tree    : {ROOT} at {commit}",
        f"load    : {_load()} (other work on these cores slows every row, the references included)",
    ]


def _fmt_int(v: int | None) -> str:
    return f"{v:,}" if v is not None else "-"


def print_table(results: list[Result], runs: int) -> None:
    """The main table: one row per stage or reference tool."""
    head = (f"{'stage':34} {'input':18} {'events':>11} {'seconds':>8} {'cpu s':>7} {'input/s':>10} "
            f"{'peak RSS MiB':>12} {'anon MiB':>8} {'target/s':>9} {'result':>6}")
    print(head)
    print("-" * len(head))
    for r in results:
        label = STAGE_LABELS.get(r.stage, r.stage)
        if r.skipped:
            print(f"{label:34} {r.input_desc:18} {r.skipped}")
            continue
        best, rate, peak, anon = r.best, r.rate, r.peak_mib, r.anon_mib
        print(f"{label:34} {r.input_desc:18} {_fmt_int(r.events):>11} "
              f"{best if best is not None else 0:8.2f} {r.best_cpu or 0:7.2f} "
              f"{_fmt_int(round(rate) if rate else None):>10} "
              f"{peak if peak is not None else 0:12.1f} {anon if anon is not None else 0:8.1f} "
              f"{_fmt_int(r.target):>9} {r.verdict:>6}")
    print(f"seconds: wall clock, best of {runs} run{'s' if runs != 1 else ''} (watchstander stages: the work "
          f"alone; reference tools: spawn to exit); cpu s: least user+system CPU over the runs")
    print("input/s: packets or lines per second of wall clock, the unit of the targets")
    print("peak RSS: the process's ru_maxrss (highest over the runs), interpreter and mapped file pages included")
    print(f"anon MiB: highest RssAnon sampled every {SAMPLE_S * 1000:.0f} ms (heap only, no file-backed pages)")


def _ratio(a: Result | None, b: Result | None) -> str:
    if a is None or b is None or a.rate is None or b.rate is None:
        return "n/a (reference skipped)" if b is None or b.skipped else "n/a"
    return f"{a.rate / b.rate:6.1f}x  ({round(a.rate):,} vs {round(b.rate):,} per s)"


def print_ratios(by: dict[str, Result]) -> None:
    """Watchstander's rates relative to the reference tools on the same input."""
    print("\nratios to the reference tools (same input, higher is faster)")
    for stage in ("pcap.parse", "pcap.e2e", "pcap.replay"):
        if stage in by:
            print(f"  {STAGE_LABELS[stage]:34} / tshark   : {_ratio(by[stage], by.get('tshark'))}")
    for stage in ("syslog.parse", "syslog.e2e", "syslog.replay"):
        if stage in by:
            print(f"  {STAGE_LABELS[stage]:34} / fail2ban : {_ratio(by[stage], by.get('fail2ban'))}")
    f2b = by.get("fail2ban")
    if f2b is not None and "summary" in f2b.extra:
        print(f"  (fail2ban-regex counted: {f2b.extra['summary']})")


def flatness(small: Result, large: Result) -> tuple[str, str]:
    """A memory line comparing peak RSS (and heap) at two input sizes, and PASS/FAIL on peak RSS."""
    a, b = small.peak_mib or 0.0, large.peak_mib or 0.0
    growth = (b - a) / a if a else 0.0
    ha, hb = small.anon_mib or 0.0, large.anon_mib or 0.0
    line = (f"{small.input_desc} -> {large.input_desc}: peak RSS {a:.1f} -> {b:.1f} MiB "
            f"({growth:+.1%}), anon {ha:.1f} -> {hb:.1f} MiB")
    return line, "PASS" if growth <= FLAT_TOLERANCE else "FAIL"


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    """Generate or reuse the inputs, measure every stage and reference, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, help=f"frames in the capture (default {DEFAULT_PACKETS:,})")
    parser.add_argument("--lines", type=int, help=f"lines in the auth log (default {DEFAULT_LINES:,})")
    parser.add_argument("--quick", action="store_true",
                        help=f"one run per measurement, and 1/{QUICK_DIVISOR} of the default sizes "
                             "unless --packets/--lines are given")
    parser.add_argument("--runs", type=int, help="runs per measurement, best kept (default 3, 1 with --quick)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="cache folder for generated inputs")
    parser.add_argument("--only", help="comma-separated measurements to run (e.g. syslog.parse,syslog.e2e); "
                             "the report then shows those rows alone")
    parser.add_argument("--worker", nargs=2, metavar=("STAGE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args.worker[0], Path(args.worker[1]))

    divisor = QUICK_DIVISOR if args.quick else 1
    packets = args.packets or DEFAULT_PACKETS // divisor
    lines = args.lines or DEFAULT_LINES // divisor
    runs = args.runs or (1 if args.quick else 3)
    if packets < 2 or lines < 2 or runs < 1:
        parser.error("--packets and --lines must be at least 2, --runs at least 1")

    print("Watchstander pipeline benchmark")
    for line in machine_lines():
        print(line)
    print(f"inputs  : {packets:,} packets, {lines:,} syslog lines (and half of each for the memory check); "
          f"{runs} run(s) per measurement")
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    say("\npreparing inputs in " + str(args.data))
    pcap, n_pkts = cached_input(args.data, "pcap", packets, say)
    pcap_half, n_pkts_half = cached_input(args.data, "pcap", packets // 2, say)
    syslog, n_lines = cached_input(args.data, "syslog", lines, say)
    syslog_half, n_lines_half = cached_input(args.data, "syslog", lines // 2, say)
    p_desc, ph_desc = f"{n_pkts:,} packets", f"{n_pkts_half:,} packets"
    s_desc, sh_desc = f"{n_lines:,} lines", f"{n_lines_half:,} lines"

    plan: list[tuple[str, Callable[[], Result]]] = [
        ("idle", lambda: measure_stage("idle", None, 0, "-", 1)),
        ("pcap.parse", lambda: measure_stage("pcap.parse", pcap, n_pkts, p_desc, runs, TARGETS["pcap.parse"])),
        ("pcap.e2e", lambda: measure_stage("pcap.e2e", pcap, n_pkts, p_desc, runs, TARGETS["pcap.e2e"])),
        ("pcap.e2e.half", lambda: measure_stage("pcap.e2e", pcap_half, n_pkts_half, ph_desc, runs, TARGETS["pcap.e2e"])),
        ("pcap.replay", lambda: measure_stage("pcap.replay", pcap, n_pkts, p_desc, runs)),
        ("tshark", lambda: measure_tshark(pcap, n_pkts, p_desc, runs)),
        ("syslog.parse", lambda: measure_stage("syslog.parse", syslog, n_lines, s_desc, runs, TARGETS["syslog.parse"])),
        ("syslog.e2e", lambda: measure_stage("syslog.e2e", syslog, n_lines, s_desc, runs, TARGETS["syslog.e2e"])),
        ("syslog.e2e.half", lambda: measure_stage("syslog.e2e", syslog_half, n_lines_half, sh_desc, runs,
                                                  TARGETS["syslog.e2e"])),
        ("syslog.replay", lambda: measure_stage("syslog.replay", syslog, n_lines, s_desc, runs)),
        ("fail2ban", lambda: measure_fail2ban(syslog, n_lines, s_desc, runs)),
    ]
    by: dict[str, Result] = {}
    say("\nmeasuring")
    if args.only:
        wanted = set(args.only.split(","))
        for key, fn in plan:
            if key in wanted:
                by[key] = res = fn()
                say(f"  {key:16} {res.skipped or f'{res.rate:,.0f} records/s'}"
                    + (f"  target {res.target:,}/s: {res.verdict}" if res.target else ""))
        return 0
    for key, fn in plan:
        t0 = time.perf_counter()
        by[key] = res = fn()
        note = res.skipped or (f"{res.rate:,.0f} records/s" if res.rate else "done")
        say(f"  {key:16} {note}  [{time.perf_counter() - t0:.1f} s]")

    order = ["pcap.parse", "pcap.e2e.half", "pcap.e2e", "pcap.replay", "tshark",
             "syslog.parse", "syslog.e2e.half", "syslog.e2e", "syslog.replay", "fail2ban", "idle"]
    print()
    print_table([by[k] for k in order], runs)
    print_ratios(by)

    print(f"\npeak memory as the input doubles (parse+detect+correlate, fresh process each; "
          f"flat: peak RSS grows <= {FLAT_TOLERANCE:.0%})")
    verdicts: list[tuple[str, str]] = []
    for kind in ("pcap", "syslog"):
        line, verdict = flatness(by[f"{kind}.e2e.half"], by[f"{kind}.e2e"])
        print(f"  {kind:7} {line}  {verdict}")
        verdicts.append((f"{kind} memory flat", verdict))
    idle = by["idle"]
    print(f"  (interpreter + imports alone: peak RSS {idle.peak_mib or 0:.1f} MiB, anon {idle.anon_mib or 0:.1f} MiB)")

    print("\nfindings on the full inputs (parse+detect+correlate)")
    for kind in ("pcap", "syslog"):
        e = by[f"{kind}.e2e"].extra
        print(f"  {kind:7} {e.get('findings', '?')} findings, {e.get('incidents', '?')} incidents, "
              f"{e.get('detector_failures', 0)} detector failures")

    started_on, ended_on = machine_lines()[4].split(" at ", 1)[1], tree_state()
    if started_on != ended_on:
        print(f"\nWARNING: the tree changed during the run ({started_on} -> {ended_on}); "
              "rows may have measured different code")
    verdicts = [(STAGE_LABELS[k], by[k].verdict) for k in TARGETS] + verdicts
    failed = [name for name, v in verdicts if v == "FAIL"]
    print(f"\ntargets met: {len(verdicts) - len(failed)} of {len(verdicts)}")
    for name in failed:
        print(f"  FAIL: {name}")
    return 0  # a report, not a gate


if __name__ == "__main__":
    sys.exit(main())
