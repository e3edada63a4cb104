"""Soak: a real `watchstander run` fed mixed syslog and SNMP traps at a fixed rate for minutes.

Usage: python benchmarks/soak.py [--minutes 10 | --quick] [--udp-rate 100000] [--tcp-rate 5000]
                                 [--octet-rate 5000] [--trap-rate 50] [--attack-every 2]
                                 [--flush-s 1] [--ceiling-s 15 | --no-ceiling] [--json FILE] [--keep]
                                 [--set-rmem-max BYTES] [--nice N]

The daemon runs as a subprocess (`python -m watchstander.agent.cli.main run`) with its own config,
store and control socket in a temporary folder and [metrics] on a free loopback port. Each
transport has a sender process of its own (so senders never share a GIL with each other or with
the daemon), paced in 10 ms ticks:

- UDP: RFC 5424 datagrams, one message each;
- TCP with LF framing, and TCP with RFC 6587 octet-counted framing (`LEN SP MSG`);
- SNMP v2c traps (IF-MIB linkUp), when this tree has a trap source: one trap captured from Debian's
  `snmptrap` and replayed (traps carry no state the receiver checks).

Most messages are benign cron lines that are parsed and run through the detectors without making
findings. Every `--attack-every` seconds one sender (in turn: UDP, TCP-LF, TCP-octet) sends a burst
of failed SSH logins from a fresh address against a fresh host, as many as the brute-force
detector needs; the send time of the burst's last line is recorded, and a reader polls the store
(read-only, every 20 ms) for the finding naming that address. Event-to-incident latency is the
difference: detection plus the flush interval (`--flush-s`) plus the store write.

Reported: messages sent and accepted per transport and per second; application drops (sent minus
what each source counted, from the metrics endpoint) and kernel drops (/proc/net/udp's drops column
for each UDP port); p50/p99 latency; daemon CPU per message; RSS after warm-up and at the end.
Then the lossless ceiling of each TCP framing: one connection sends as fast as the daemon reads
(TCP's back-pressure keeps it lossless), and the ceiling is what the daemon parsed per second.

Targets (issue 9): 100,000 UDP messages/s sustained with zero drops, parsing and detection
included, and RSS growth under 10 % after warm-up. UDP needs the socket buffer: the daemon asks for
[sources.udp] rcvbuf and the kernel caps it at net.core.rmem_max, printed at start.
The script exits 0 whether or not a target is met; a missed target prints FAIL.
"""

from __future__ import annotations

import argparse
import grp
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from watchstander.agent.cli.main import main as watchstander_main
from watchstander.agent.daemon import daemon as daemon_module
from watchstander.agent.daemon.metrics import MetricsEndpoint, start_metrics
from watchstander.agent.daemon.registry import SOURCE_KINDS

REPO = Path(__file__).resolve().parents[1]
TICK_S = 0.01
FAILURES_NEEDED = 10  # [detectors.bruteforce] failures, the default
TRAP_COMMUNITY = "soak-community"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"


# A C sender for the bulk of the UDP load: sendmmsg batches cost the machine far less CPU than a
# Python loop of sendto calls, and on two cores that CPU is the daemon's. Same message, same pacing.
UDPBLAST_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 256
#define MSG 160

static volatile sig_atomic_t stopping = 0;
static void on_term(int sig) { (void)sig; stopping = 1; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: udpblast PORT RATE SECONDS\n"); return 2; }
    int port = atoi(argv[1]);
    double rate = atof(argv[2]), seconds = atof(argv[3]);
    signal(SIGTERM, on_term);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) { perror("connect"); return 1; }
    static char bufs[BATCH][MSG];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    memset(msgs, 0, sizeof msgs);
    unsigned long long sent = 0, seq = 0;
    double start = now_s(), end = start + seconds;
    while (!stopping) {
        double t = now_s();
        if (t >= end) break;
        unsigned long long due = (unsigned long long)(rate * (t - start));
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        struct tm tm;
        gmtime_r(&wall.tv_sec, &tm);
        char stamp[96];
        snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, wall.tv_nsec / 1000);
        while (sent < due && !stopping) {
            unsigned n = due - sent > BATCH ? BATCH : (unsigned)(due - sent);
            for (unsigned i = 0; i < n; i++) {
                int len = snprintf(bufs[i], MSG, "<78>1 %s web1 CRON 4242 - - (root) CMD (run-parts /etc/cron.hourly) seq=%llu",
                                   stamp, seq++);
                iov[i].iov_base = bufs[i];
                iov[i].iov_len = (size_t)len;
                msgs[i].msg_hdr.msg_iov = &iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            int r = sendmmsg(fd, msgs, n, 0);
            if (r < 0) { perror("sendmmsg"); return 1; }
            sent += (unsigned)r;
        }
        usleep(2000);
    }
    printf("%llu\n", sent);
    return 0;
}
"""


def build_udpblast(folder: Path) -> Path | None:
    """Compile the C UDP sender into `folder`; None without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    source = folder / "udpblast.c"
    source.write_text(UDPBLAST_C, encoding="utf-8")
    binary = folder / "udpblast"
    subprocess.run([cc, "-O2", "-o", str(binary), str(source)], check=True, timeout=120)
    return binary


# ---------------------------------------------------------------- messages

def _stamp() -> bytes:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z").encode()


def benign(ts: bytes, seq: int) -> bytes:
    """A cron line: parsed into an event, fed to the detectors, no finding."""
    return b"<78>1 " + ts + b" web1 CRON 4242 - - (root) CMD (run-parts /etc/cron.hourly) seq=" + str(seq).encode()


def attack(ts: bytes, address: str, host: str, i: int) -> bytes:
    """One failed SSH login from `address` against `host`."""
    return (b"<38>1 " + ts + b" " + host.encode() + b" sshd " + str(1000 + i).encode()
            + b" - - Failed password for root from " + address.encode() + b" port "
            + str(40000 + i).encode() + b" ssh2")


def frame(msg: bytes, framing: str) -> bytes:
    """A message as sent on a stream: LF-terminated, or RFC 6587 octet-counted."""
    return msg + b"\n" if framing == "lf" else str(len(msg)).encode() + b" " + msg


# ---------------------------------------------------------------- senders

@dataclass
class SenderSpec:
    """What one sender process sends."""

    transport: str          # udp | lf | octet | trap
    port: int
    rate: float             # messages per second
    seconds: float
    attack_slot: int        # this sender attacks when (tick // attack_ticks) % attackers == slot
    attackers: int
    attack_every: float
    payload: bytes = b""    # the trap datagram, for transport == "trap"
    blast: bool = False     # ceiling mode: as fast as the peer reads, no pacing


def _sender(spec: SenderSpec, sent: Synchronized[int], behind: Synchronized[int], attacks: Any,
            stop: Any) -> None:
    """A paced sender; counts what it sent, and reports each burst's (address, send time, transport)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if spec.transport in ("udp", "trap"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", spec.port))
    else:
        sock = socket.create_connection(("127.0.0.1", spec.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    framing = spec.transport
    if spec.blast:
        _blast(sock, framing, spec.seconds, sent, stop)
        sock.close()
        return
    attack_ticks = max(1, round(spec.attack_every / TICK_S))
    start = time.monotonic()
    end = start + spec.seconds
    seq = n = burst = 0
    due = 0.0
    tick = 0
    while not stop.is_set():
        now = time.monotonic()
        if now >= end:
            break
        target = spec.rate * (now - start)
        count = int(target - due)
        if count > 0:
            due += count
            ts = _stamp()
            if framing == "trap":
                for _ in range(count):
                    sock.send(spec.payload)
            elif framing == "udp":
                for _ in range(count):
                    sock.send(benign(ts, seq))
                    seq += 1
            else:
                sock.sendall(b"".join(frame(benign(ts, seq + k), framing) for k in range(count)))
                seq += count
            n += count
        ticks_now = int((now - start) / TICK_S)
        if ticks_now // attack_ticks > tick // attack_ticks and framing != "trap":
            slot = (ticks_now // attack_ticks) % spec.attackers
            if slot == spec.attack_slot:
                burst += 1
                address = f"10.{spec.attack_slot + 1}.{burst // 250}.{burst % 250 + 1}"
                host = f"bastion-{spec.transport}-{burst}"
                ts = _stamp()
                lines = [attack(ts, address, host, i) for i in range(FAILURES_NEEDED)]
                if framing == "udp":
                    for line in lines:
                        sock.send(line)
                else:
                    sock.sendall(b"".join(frame(line, framing) for line in lines))
                attacks.put((address, time.time(), spec.transport))
                n += len(lines)
        tick = ticks_now
        sent.value = n
        sleep = start + (ticks_now + 1) * TICK_S - time.monotonic()
        if sleep > 0:
            time.sleep(sleep)
        elif -sleep > 1.0:
            behind.value += 1
    sent.value = n
    if framing in ("lf", "octet"):
        sock.shutdown(socket.SHUT_WR)
    sock.close()


def _blast(sock: socket.socket, framing: str, seconds: float, sent: Synchronized[int], stop: Any) -> None:
    ts = _stamp()
    batch = 2000
    blob = b"".join(frame(benign(ts, k), framing) for k in range(batch))
    end = time.monotonic() + seconds
    n = 0
    while not stop.is_set() and time.monotonic() < end:
        sock.sendall(blob)
        n += batch
        sent.value = n
    sock.shutdown(socket.SHUT_WR)


@dataclass
class Sender:
    """A running sender process and its shared counters."""

    spec: SenderSpec
    process: mp.Process
    sent: Synchronized[int]
    behind: Synchronized[int]


def start_sender(ctx: Any, spec: SenderSpec, attacks: Any, stop: Any) -> Sender:
    """Fork one sender process."""
    sent = ctx.Value("q", 0, lock=False)
    behind = ctx.Value("q", 0, lock=False)
    proc = ctx.Process(target=_sender, args=(spec, sent, behind, attacks, stop), name=f"soak-{spec.transport}",
                       daemon=True)
    proc.start()
    return Sender(spec, proc, sent, behind)


# ---------------------------------------------------------------- the daemon

def free_port(kind: int) -> int:
    """A port free for `kind` (SOCK_DGRAM or SOCK_STREAM) on 127.0.0.1."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def has_trap_source() -> bool:
    """Whether this tree's daemon runs SNMP trap receivers ([sources] snmp_traps)."""
    return any("trap" in kind for kind in SOURCE_KINDS)


def capture_trap(community: str) -> bytes | None:
    """One SNMPv2c linkUp trap as Debian's snmptrap encodes it, caught on a socket of ours."""
    if shutil.which("snmptrap") is None:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        port = s.getsockname()[1]
        subprocess.run(["snmptrap", "-v", "2c", "-c", community, f"127.0.0.1:{port}", "", LINK_UP,
                        "1.3.6.1.2.1.2.2.1.1.1", "i", "1"], check=True, timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return s.recv(65536)


def write_config(folder: Path, sock_dir: Path, ports: dict[str, int], flush_s: float, traps: bool,
                 rcvbuf: int | None = None) -> Path:
    """The daemon's TOML: loopback listeners, metrics on, its own store and control socket."""
    group = grp.getgrgid(os.getgid()).gr_name
    text = (f'[store]\nurl = "sqlite:///{folder / "soak.db"}"\n'
            f'[control]\nsocket = "{sock_dir / "c.sock"}"\nsocket_group = "{group}"\n'
            f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{ports["metrics"]}"\n'
            f'[sources]\nsyslog_udp = ["127.0.0.1:{ports["udp"]}"]\n'
            f'syslog_tcp = ["127.0.0.1:{ports["tcp"]}"]\nflush_s = {flush_s}\n')
    tail = f'[sources.udp]\nrcvbuf = {rcvbuf}\n' if rcvbuf else ""
    if traps:
        secret = folder / "trap-community"
        secret.write_text(TRAP_COMMUNITY + "\n", encoding="utf-8")
        secret.chmod(0o600)
        text += (f'snmp_traps = ["127.0.0.1:{ports["trap"]}"]\n'
                 f'[[sources.snmp.trap_communities]]\nname = "soak"\ncommunity_file = "{secret}"\n')
    path = folder / "soak.toml"
    path.write_text(text + tail, encoding="utf-8")
    return path


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
    """The daemon's metrics, or None if the endpoint does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def metric(samples: dict[tuple[str, frozenset[tuple[str, str]]], float] | None, name: str) -> float | None:
    """The one unlabelled sample `name`."""
    if samples is None:
        return None
    return samples.get((name, frozenset()))


def accepted_count(samples: dict[tuple[str, frozenset[tuple[str, str]]], float] | None) -> float | None:
    """Messages parsed: events fed to the detectors plus lines no detector needs (counted, no Event built)."""
    events = metric(samples, "watchstander_pipeline_events_total")
    if events is None:
        return None
    return events + sum(v for (name, labels), v in (samples or {}).items()
                        if name == "watchstander_source_events_total" and ("counter", "unneeded") in labels)


def source_counters(samples: dict[tuple[str, frozenset[tuple[str, str]]], float] | None) -> dict[str, dict[str, float]]:
    """Every source's counters, by source name."""
    out: dict[str, dict[str, float]] = {}
    for (name, labels), value in (samples or {}).items():
        lab = dict(labels)
        if name == "watchstander_source_events_total":
            out.setdefault(lab["source"], {})[lab["counter"]] = value
        elif name == "watchstander_source_records_total":
            key = f"{lab['outcome']}:{lab['reason']}"
            out.setdefault(lab["source"], {})[key] = value
    return out


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def udp_kernel_drops(port: int) -> int | None:
    """The drops column of /proc/net/udp for the socket bound to 127.0.0.1:port."""
    want = f"0100007F:{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[1] == want:
            return int(cols[-1])
    return None


def rmem_max() -> int:
    """net.core.rmem_max: the cap on SO_RCVBUF."""
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


def wait_ready(proc: subprocess.Popen[bytes], ports: dict[str, int], timeout: float = 60.0,
               traps: bool = False) -> bool:
    """Until the UDP ports are bound (and the metrics endpoint answers, if wired); False if it never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"watchstander run exited with {proc.returncode}; see its log")
        # The trap receiver starts after the syslog listeners: a trap sent before it binds is refused.
        if udp_kernel_drops(ports["udp"]) is not None and (not traps or udp_kernel_drops(ports["trap"]) is not None):
            break
        time.sleep(0.1)
    else:
        raise SystemExit("watchstander run never bound its UDP port")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if scrape(ports["metrics"]) is not None:
            return True
        time.sleep(0.2)
    return False


# ---------------------------------------------------------------- latency

class FindingWatcher(threading.Thread):
    """Polls the store read-only for brute-force findings; records when each address first appears."""

    def __init__(self, db: Path, poll_s: float = 0.02) -> None:
        super().__init__(name="finding-watcher", daemon=True)
        self.db = db
        self.poll_s = poll_s
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.errors = 0

    def run(self) -> None:
        """Poll until stopped."""
        last = 0
        conn: sqlite3.Connection | None = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
                rows = conn.execute("SELECT id, entities_json FROM findings WHERE id > ? AND detector = 'bruteforce'",
                                    (last,)).fetchall()
                now = time.time()
                for fid, entities in rows:
                    last = max(last, fid)
                    for values in json.loads(entities).values():
                        for v in values if isinstance(values, list) else [values]:
                            self.seen.setdefault(str(v), now)
            except sqlite3.Error:
                self.errors += 1  # the store does not exist yet, or is being migrated
                conn = None
            self.stop.wait(self.poll_s)
        if conn is not None:
            conn.close()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# ---------------------------------------------------------------- the run

@dataclass
class Sample:
    """One periodic reading of the daemon."""

    t: float
    events: float | None
    rss_kib: int
    cpu_s: float
    kernel_drops: int | None


@dataclass
class Report:
    """Everything the soak measured."""

    config: dict[str, Any]
    transports: dict[str, dict[str, Any]] = field(default_factory=dict)
    totals: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    ceilings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _stop_daemon(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def _drain(metrics_port: int | None, target: float | None, timeout: float = 60.0) -> float | None:
    """Wait until the daemon's event count reaches `target` or stops moving for 2 s; the final count."""
    if metrics_port is None:
        time.sleep(5)
        return None
    deadline = time.monotonic() + timeout
    last, still_since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        value = accepted_count(scrape(metrics_port)) or 0.0
        if target is not None and value >= target:
            return value
        if value != last:
            last, still_since = value, time.monotonic()
        elif time.monotonic() - still_since > 2.0:
            return value
        time.sleep(0.25)
    return last


def run(args: argparse.Namespace) -> Report:
    """Start the daemon, soak it, measure the TCP ceilings, stop it; the figures."""
    seconds = args.minutes * 60.0
    warmup = min(60.0, max(10.0, seconds * 0.2))
    traps = has_trap_source() and args.trap_rate > 0
    trap_payload = capture_trap(TRAP_COMMUNITY) if traps else None
    report = Report(config={"nice": args.nice, "seconds": seconds, "warmup_s": warmup, "udp_rate": args.udp_rate,
                            "tcp_lf_rate": args.tcp_rate, "tcp_octet_rate": args.octet_rate,
                            "trap_rate": args.trap_rate if trap_payload else 0, "attack_every_s": args.attack_every,
                            "flush_s": args.flush_s, "rmem_max": rmem_max(), "cpus": os.cpu_count(),
                            "loadavg_start": Path("/proc/loadavg").read_text().split()[:3]})
    if not has_trap_source():
        report.notes.append("SNMP traps skipped: this tree's daemon has no trap source (agent/daemon/registry.py)")
    elif trap_payload is None and args.trap_rate > 0:
        report.notes.append("SNMP traps skipped: snmptrap is not installed (apt-get install snmp)")
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    sock_dir = Path(tempfile.mkdtemp(dir="/tmp", prefix="soak-sock-"))
    ports = {"udp": free_port(socket.SOCK_DGRAM), "tcp": free_port(socket.SOCK_STREAM),
             "metrics": free_port(socket.SOCK_STREAM), "trap": free_port(socket.SOCK_DGRAM)}
    cfg = write_config(folder, sock_dir, ports, args.flush_s, trap_payload is not None, args.rcvbuf)
    blaster = build_udpblast(folder) if args.udp_sender == "c" else None
    report.config["udp_sender"] = "c (sendmmsg)" if blaster else "python"
    log_path = folder / "daemon.log"
    command = ([sys.executable, __file__, "--serve-with-metrics", str(cfg)] if args.shim_metrics
               else [sys.executable, "-m", "watchstander.agent.cli.main", "run", "--config", str(cfg)])
    if args.shim_metrics:
        report.notes.append("the daemon ran as `watchstander run` with the metrics endpoint started by this "
                            "script's --serve-with-metrics shim")
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=folder)
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    senders: list[Sender] = []
    watcher = FindingWatcher(folder / "soak.db")
    try:
        wired = wait_ready(proc, ports, traps=trap_payload is not None)
        metrics_port = ports["metrics"] if wired else None
        if not wired:
            report.notes.append("the metrics endpoint did not answer: `watchstander run` does not start it yet "
                                "(agent/daemon/metrics.py start_metrics); application counts unavailable (try --shim-metrics)")
        watcher.start()
        attacks = ctx.Queue()
        # With the C sender, the Python UDP sender only sends the brute-force bursts.
        specs = [SenderSpec("udp", ports["udp"], 0 if blaster else args.udp_rate, seconds, 0, 3, args.attack_every),
                 SenderSpec("lf", ports["tcp"], args.tcp_rate, seconds, 1, 3, args.attack_every),
                 SenderSpec("octet", ports["tcp"], args.octet_rate, seconds, 2, 3, args.attack_every)]
        if trap_payload is not None:
            specs.append(SenderSpec("trap", ports["trap"], args.trap_rate, seconds, -1, 3, args.attack_every,
                                    payload=trap_payload))
        samples: list[Sample] = []
        t0 = time.monotonic()
        cpu0 = cpu_s(proc.pid)
        base = scrape(metrics_port) if metrics_port else None
        events0 = accepted_count(base) or 0.0
        drops0 = udp_kernel_drops(ports["udp"]) or 0
        senders = [start_sender(ctx, spec, attacks, stop) for spec in specs]
        blast = (subprocess.Popen([str(blaster), str(ports["udp"]), str(args.udp_rate), str(seconds)],
                                  stdout=subprocess.PIPE) if blaster else None)
        print(f"soak: {seconds:.0f} s against pid {proc.pid}, UDP {args.udp_rate:,.0f}/s, TCP-LF {args.tcp_rate:,.0f}/s, "
              f"TCP-octet {args.octet_rate:,.0f}/s, traps {args.trap_rate if trap_payload else 0}/s; "
              f"rmem_max {rmem_max():,}; work in {folder}", flush=True)
        while any(s.process.is_alive() for s in senders):
            time.sleep(min(args.sample_s, max(0.1, seconds + 1 - (time.monotonic() - t0))))
            if proc.poll() is not None:
                raise SystemExit(f"watchstander run died during the soak ({proc.returncode}); log: {log_path}")
            now = time.monotonic() - t0
            sample = Sample(now, accepted_count(scrape(metrics_port)) if metrics_port
                            else None, rss_kib(proc.pid), cpu_s(proc.pid), udp_kernel_drops(ports["udp"]))
            samples.append(sample)
            sent = sum(s.sent.value for s in senders) + (round(args.udp_rate * min(now, seconds)) if blast else 0)
            print(f"  {now:6.0f} s  sent {sent:>11,}  events {sample.events or 0:>11,.0f}  "
                  f"rss {sample.rss_kib / 1024:7.1f} MiB  kernel drops {(sample.kernel_drops or 0) - drops0:,}",
                  flush=True)
            if now > seconds + 30:
                break
        send_s = time.monotonic() - t0
        for s in senders:
            s.process.join(timeout=10)
        blasted = 0
        if blast is not None:
            out, _ = blast.communicate(timeout=30)
            blasted = int(out.decode().strip() or 0)
        sent_total = sum(s.sent.value for s in senders) + blasted
        final_events = _drain(metrics_port, events0 + sent_total)
        final = scrape(metrics_port) if metrics_port else None
        time.sleep(args.flush_s * 2 + 0.5)  # the last bursts' flush
        watcher.stop.set()
        watcher.join()
        bursts = []
        while not attacks.empty():
            bursts.append(attacks.get())
        report.totals = _totals(report, senders, blasted, base, final, final_events, events0, send_s,
                                seconds, cpu_s(proc.pid) - cpu0, udp_kernel_drops(ports["udp"]), drops0, ports)
        report.latency = _latency(bursts, watcher.seen)
        report.memory = _memory(samples, warmup, rss_kib(proc.pid))
        if args.ceiling_s > 0:
            report.ceilings = {framing: _ceiling(ctx, ports["tcp"], framing, args.ceiling_s, metrics_port)
                               for framing in ("lf", "octet")}
        report.config["daemon_exit"] = _stop_daemon(proc)
        log_text = log_path.read_text(errors="replace")
        report.totals["daemon_log_warnings"] = sum(1 for line in log_text.splitlines()
                                                   if "WARNING" in line or "ERROR" in line)
    finally:
        stop.set()
        for s in senders:
            if s.process.is_alive():
                s.process.terminate()
                s.process.join(timeout=5)
        watcher.stop.set()
        _stop_daemon(proc)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(sock_dir, ignore_errors=True)
    return report


def _totals(report: Report, senders: list[Sender], blasted: int, base: Any, final: Any, final_events: float | None,
            events0: float, send_s: float, seconds: float, cpu: float, drops: int | None, drops0: int,
            ports: dict[str, int]) -> dict[str, Any]:
    counters = source_counters(final)
    counters0 = source_counters(base)
    names = {"udp": f"syslog-udp:127.0.0.1:{ports['udp']}", "lf": f"syslog-tcp:127.0.0.1:{ports['tcp']}",
             "octet": f"syslog-tcp:127.0.0.1:{ports['tcp']}", "trap": f"snmp-trap:127.0.0.1:{ports['trap']}"}
    for s in senders:
        source = names[s.spec.transport]
        now, before = counters.get(source, {}), counters0.get(source, {})
        delta = {k: v - before.get(k, 0.0) for k, v in now.items() if v - before.get(k, 0.0)}
        n = s.sent.value + (blasted if s.spec.transport == "udp" else 0)
        report.transports[s.spec.transport] = {
            "target_per_s": float(report.config["udp_rate"]) if s.spec.transport == "udp" else s.spec.rate, "sent": n, "sent_per_s": round(n / min(send_s, seconds)),
            "sender_fell_behind_s": s.behind.value, "source": source, "source_counters": delta,
        }
    sent = sum(s.sent.value for s in senders) + blasted
    accepted = None if final_events is None else final_events - events0
    udp = report.transports.get("udp", {})
    udp_counters = udp.get("source_counters", {})
    udp_counted = next((udp_counters[k] for k in ("datagrams", "received", "messages") if k in udp_counters), None)
    kernel = None if drops is None else drops - drops0
    return {
        "sent": sent, "send_s": round(send_s, 1), "offered_per_s": round(sent / min(send_s, seconds)),
        "accepted_events": accepted,
        "accepted_per_s": None if accepted is None else round(accepted / min(send_s, seconds)),
        "lost_or_dropped": None if accepted is None else sent - accepted,
        "udp_received_by_source": udp_counted,
        "udp_app_drops": None if final is None else sum(v for k, v in udp_counters.items()
                                                        if k in ("dropped", "skipped", "overlong")),
        "udp_kernel_drops": kernel,
        "trap_kernel_drops": udp_kernel_drops(ports["trap"]) if "trap" in report.transports else None,
        "udp_unaccounted": None if udp_counted is None or kernel is None else udp.get("sent", 0) - udp_counted - kernel,
        "daemon_cpu_s": round(cpu, 1), "daemon_cpu_us_per_msg": round(cpu / sent * 1e6, 2) if sent else None,
        # What one accepted event cost the daemon (receive, parse, detect, store): its capacity on
        # one free core is about 1e6 / this, whatever else the machine was doing.
        "daemon_cpu_us_per_accepted": round(cpu / accepted * 1e6, 2) if accepted else None,
        "loadavg_end": Path("/proc/loadavg").read_text().split()[:3],
        "skipped_by_reason": {f"{src}:{k}": v for src, cs in counters.items() for k, v in cs.items()
                              if ":" in k and v},
    }


def _latency(bursts: list[tuple[str, float, str]], seen: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {"bursts": len(bursts)}
    by: dict[str, list[float]] = {}
    missing = 0
    for address, sent_at, transport in bursts:
        if address in seen:
            by.setdefault(transport, []).append(seen[address] - sent_at)
            by.setdefault("all", []).append(seen[address] - sent_at)
        else:
            missing += 1
    out["not_detected"] = missing
    for key, values in sorted(by.items()):
        out[key] = {"n": len(values), "p50_s": round(percentile(values, 50), 3),
                    "p99_s": round(percentile(values, 99), 3), "max_s": round(max(values), 3)}
    return out


def _memory(samples: list[Sample], warmup: float, end_kib: int) -> dict[str, Any]:
    after = [s for s in samples if s.t >= warmup]
    start = after[0].rss_kib if after else (samples[0].rss_kib if samples else end_kib)
    peak = max((s.rss_kib for s in samples), default=end_kib)
    return {"rss_first_sample_mib": round(samples[0].rss_kib / 1024, 1) if samples else None,
            "rss_after_warmup_mib": round(start / 1024, 1), "rss_end_mib": round(end_kib / 1024, 1),
            "rss_peak_mib": round(peak / 1024, 1),
            "growth_after_warmup_pct": round((end_kib - start) / start * 100, 1) if start else None}


def _ceiling(ctx: Any, port: int, framing: str, seconds: float, metrics_port: int | None) -> dict[str, Any]:
    """One connection sending as fast as the daemon reads; what the daemon parsed per second."""
    if metrics_port is None:
        return {"skipped": "needs the metrics endpoint"}
    stop = ctx.Event()
    e0 = accepted_count(scrape(metrics_port)) or 0.0
    t0 = time.monotonic()
    sender = start_sender(ctx, SenderSpec(framing, port, 0, seconds, -1, 1, 1e9, blast=True), ctx.Queue(), stop)
    sender.process.join(timeout=seconds + 60)
    final = _drain(metrics_port, e0 + sender.sent.value)
    elapsed = time.monotonic() - t0
    accepted = (final or 0.0) - e0
    return {"seconds": round(elapsed, 1), "sent": sender.sent.value, "parsed": accepted,
            "lost": sender.sent.value - accepted, "per_s": round(accepted / elapsed)}


# ---------------------------------------------------------------- output

def summary(report: Report) -> list[str]:
    """The figures in a few lines."""
    t, lat, mem = report.totals, report.latency, report.memory
    lines = [(f"sent {t.get('sent', 0):,} in {t.get('send_s')} s ({t.get('offered_per_s', 0):,}/s offered); "
             f"accepted {t.get('accepted_per_s')}/s; daemon CPU {t.get('daemon_cpu_us_per_accepted')} us per accepted "
              f"event; load average {report.config.get('loadavg_start')} -> {t.get('loadavg_end')}")]
    for name, tr in report.transports.items():
        lines.append(f"  {name:6} target {tr['target_per_s']:>9,.0f}/s  sent {tr['sent']:>11,} "
                     f"({tr['sent_per_s']:,}/s)  source counters {tr['source_counters']}")
    lines.append(f"drops: UDP kernel {t.get('udp_kernel_drops')}, UDP application {t.get('udp_app_drops')}, "
                 f"UDP unaccounted {t.get('udp_unaccounted')}; trap kernel {t.get('trap_kernel_drops')}; "
                 f"sent minus parsed (all) {t.get('lost_or_dropped')}")
    every = lat.get("all", {})
    lines.append(f"event-to-incident: {lat.get('bursts')} bursts, {lat.get('not_detected')} not detected; "
                 f"p50 {every.get('p50_s')} s, p99 {every.get('p99_s')} s, max {every.get('max_s')} s")
    lines.append(f"RSS: {mem.get('rss_after_warmup_mib')} MiB after warm-up -> {mem.get('rss_end_mib')} MiB at the end "
                 f"({mem.get('growth_after_warmup_pct')} %), peak {mem.get('rss_peak_mib')} MiB")
    for framing, c in report.ceilings.items():
        lines.append(f"TCP {framing} ceiling: {c.get('per_s', c.get('skipped'))}/s, lost {c.get('lost')}")
    lines.extend(f"note: {n}" for n in report.notes)
    return lines


def verdicts(report: Report) -> list[str]:
    """PASS/FAIL lines against the issue's targets."""
    out = []
    udp = report.transports.get("udp", {})
    rate_ok = udp.get("sent_per_s", 0) >= 0.98 * report.config["udp_rate"]
    out.append(f"{'PASS' if rate_ok else 'FAIL'}  UDP offered {udp.get('sent_per_s', 0):,}/s "
               f"(target {report.config['udp_rate']:,.0f}/s{'' if rate_ok else '; the sender could not keep up'})")
    kd, ad = report.totals.get("udp_kernel_drops"), report.totals.get("udp_app_drops")
    lost = report.totals.get("lost_or_dropped")
    ok = kd == 0 and ad in (0, 0.0, None) and lost in (0, 0.0)
    out.append(f"{'PASS' if ok else 'FAIL'}  zero drops: kernel {kd}, application {ad}, sent-minus-parsed {lost}")
    growth = report.memory.get("growth_after_warmup_pct")
    out.append(f"{'PASS' if growth is not None and growth < 10 else 'FAIL'}  RSS growth after warm-up {growth} %")
    return out


def serve_with_metrics(config: str) -> int:
    """`watchstander run --config CONFIG` with the metrics endpoint started beside the daemon.

    For a tree whose `run` does not start the endpoint itself; the daemon is otherwise untouched.
    """
    cls = daemon_module.Daemon
    start, stop = cls.start, cls.stop
    endpoints: list[MetricsEndpoint] = []

    async def start_then_serve(self: daemon_module.Daemon) -> None:
        await start(self)
        endpoints.append(start_metrics(self))

    async def stop_serving_first(self: daemon_module.Daemon) -> None:
        for endpoint in endpoints:
            endpoint.stop()
        await stop(self)

    setattr(cls, "start", start_then_serve)  # noqa: B010  (a method swapped on the class, on purpose)
    setattr(cls, "stop", stop_serving_first)  # noqa: B010
    return int(watchstander_main(["run", "--config", config]))


def main() -> int:
    """Parse arguments, soak, print the report."""
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-with-metrics":
        return serve_with_metrics(sys.argv[2])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--quick", action="store_true", help="1 minute, 10 s ceilings")
    p.add_argument("--udp-rate", type=float, default=100_000)
    p.add_argument("--tcp-rate", type=float, default=5_000, help="TCP with LF framing, messages/s")
    p.add_argument("--octet-rate", type=float, default=5_000, help="TCP with octet-counted framing, messages/s")
    p.add_argument("--trap-rate", type=float, default=50, help="SNMP v2c traps/s (0: none)")
    p.add_argument("--attack-every", type=float, default=2.0, help="seconds between brute-force bursts")
    p.add_argument("--flush-s", type=float, default=1.0)
    p.add_argument("--sample-s", type=float, default=5.0)
    p.add_argument("--ceiling-s", type=float, default=15.0, help="seconds per TCP ceiling run")
    p.add_argument("--no-ceiling", action="store_true")
    p.add_argument("--json", type=Path, help="also write the report here")
    p.add_argument("--udp-sender", choices=("c", "python"), default="c",
                   help="c: a sendmmsg sender compiled at start (falls back to python without a compiler)")
    p.add_argument("--rcvbuf", type=int, metavar="BYTES",
                   help="[sources.udp] rcvbuf for the daemon (default: the daemon's, 8 MiB; capped by rmem_max)")
    p.add_argument("--set-rmem-max", type=int, metavar="BYTES",
                   help="raise net.core.rmem_max for the run (root; restored at the end)")
    p.add_argument("--nice", type=int, default=0, metavar="N",
                   help="nice value for this script, hence the daemon and every sender (e.g. -10 as root, when other work "
                        "shares the cores: the figures then show what the daemon does with a core of its own)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (config, store, daemon log)")
    p.add_argument("--shim-metrics", action="store_true",
                   help="start the metrics endpoint from this script, for a `run` that does not start it")
    args = p.parse_args()
    if args.quick:
        args.minutes, args.ceiling_s = 1.0, 10.0
    if args.no_ceiling:
        args.ceiling_s = 0.0
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by the daemon and the senders
    previous = rmem_max()
    if args.set_rmem_max:
        Path("/proc/sys/net/core/rmem_max").write_text(str(args.set_rmem_max))
    try:
        report = run(args)
    finally:
        if args.set_rmem_max:
            Path("/proc/sys/net/core/rmem_max").write_text(str(previous))
    print(json.dumps(report.__dict__, indent=2, default=str))
    for line in [*summary(report), *verdicts(report)]:
        print(line)
    if args.json:
        args.json.write_text(json.dumps(report.__dict__, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
