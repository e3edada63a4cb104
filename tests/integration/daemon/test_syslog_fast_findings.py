"""The syslog fast path loses no finding: the detectors find the same with it on as with it off.

Syslog listeners build Events only for lines some registered detector needs (`Detector.syslog_needs`);
the others are parsed and counted as `unneeded`. Fed through the real detection pipeline, the
shared auth logs and a soak-like mixture give identical findings either way, and a real UDP
socket accounts for every datagram (events plus unneeded).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.syslog_intake import Collector, until

from watchstander.agent.config.detectors import DetectorsConfig
from watchstander.agent.daemon.sources import Sink
from watchstander.agent.daemon.syslog import SyslogUdp
from watchstander.agent.detection.detectors.base import Detector, syslog_needs_of
from watchstander.agent.detection.detectors.registry import DETECTORS
from watchstander.agent.detection.pipeline import Pipeline, registered_syslog_needs
from watchstander.connectors.events import LOG, Event
from watchstander.connectors.syslog import SyslogSource, file_lines
from watchstander.connectors.syslog_messages import EVERY_LINE, NO_LINE, SyslogNeeds

pytestmark = pytest.mark.integration

Clock = Callable[[], datetime]


def _findings(lines: list[str], clock: Clock, needs: SyslogNeeds | None) -> tuple[list[tuple[Any, ...]], int, int]:
    """Findings of the default detectors over `lines`, events fed, lines counted unneeded."""
    pipeline = Pipeline(DetectorsConfig())
    src = SyslogSource("syslog-udp:test", clock, needs=needs)
    for start in range(0, len(lines), 4096):  # in batches, as a listener feeds them
        pipeline.feed_all(list(src.text_events(lines[start:start + 4096], start + 1)))
    out = [(f.detector, f.title, f.severity, f.entities, f.techniques, f.first_seen, f.last_seen, f.count,
            f.counts, f.attributes, f.evidence) for f in pipeline.findings]
    return out, pipeline.events, src.unneeded


def _soak_like(n: int) -> list[str]:
    """Benign RFC 5424 cron lines with SSH guessing bursts (as benchmarks/soak.py sends) and BSD noise."""
    lines = []
    for i in range(n):
        ts = f"2026-11-27T11:{i // 6000 % 60:02d}:{i // 100 % 60:02d}.{i % 1000:03d}Z"
        lines.append(f"<78>1 {ts} web1 CRON 4242 - - (root) CMD (run-parts /etc/cron.hourly) seq={i}")
        if i % 500 == 0:
            lines.append(f"<38>1 {ts} bastion-{i // 5000} sshd {i} - - Failed password for root from "
                         f"10.1.{i // 5000}.9 port {40000 + i % 1000} ssh2")
        if i % 700 == 0:
            lines.append(f"<13>Nov 27 11:{i // 6000 % 60:02d}:00 gw kernel: [UFW BLOCK] SRC=198.51.100.{i % 250}")
    return lines


def test_registered_needs_resolve_the_declarations() -> None:
    """Undeclared: a LOG detector needs every line, a live_only one none; a declaration wins."""

    class Plain(Detector):
        kinds = (LOG,)

    class Live(Detector):
        kinds = (LOG,)
        live_only = True

    class Declared(Detector):
        kinds = (LOG,)
        live_only = True
        syslog_needs = SyslogNeeds(apps=frozenset({"kernel"}))

    class NoLog(Detector):
        kinds = ("authentication",)

    assert syslog_needs_of(Plain) is EVERY_LINE
    assert syslog_needs_of(Live) is NO_LINE
    assert syslog_needs_of(Declared).apps == {"kernel"}
    assert syslog_needs_of(NoLog) is NO_LINE
    want = [syslog_needs_of(cls) for cls in DETECTORS.values()]
    assert registered_syslog_needs().every == any(n.every for n in want)


def test_same_findings_with_and_without_the_fast_path_on_a_soak_mixture(clock: Clock) -> None:
    lines = _soak_like(30_000)
    slow, slow_events, none = _findings(lines, clock, None)
    fast, fast_events, unneeded = _findings(lines, clock, registered_syslog_needs())
    assert none == 0
    assert any(f[0] == "bruteforce" for f in slow)
    assert fast == slow
    assert fast_events + unneeded == slow_events  # every line is counted once, as an event or as unneeded


def test_same_findings_with_and_without_the_fast_path_on_the_shared_logs(clock: Clock,
                                                                          shared_telemetry: Path) -> None:
    logs = [p for p in (shared_telemetry / "logs" / "Linux_2k.log", shared_telemetry / "logs" / "OpenSSH_2k.log",
                        shared_telemetry / "logs" / "iodine-dnsmasq" / "dnsmasq.log") if p.is_file()]
    if not logs:
        pytest.skip(f"no auth logs under {shared_telemetry / 'logs'}")
    lines: list[str] = []
    for path in logs:
        with path.open("rb") as fh:
            lines.extend(file_lines(fh, SyslogSource("x", clock).skips))
    slow, slow_events, _ = _findings(lines, clock, None)
    fast, fast_events, unneeded = _findings(lines, clock, registered_syslog_needs())
    assert slow, "the shared auth logs hold password guessing"
    assert fast == slow
    assert fast_events + unneeded == slow_events


def test_a_declared_need_keeps_exactly_its_lines(clock: Clock) -> None:
    """A detector that declares programs and keywords gets those log events and no others."""
    needs = SyslogNeeds(apps=frozenset({"kernel"}), keywords=("seq=7",))
    lines = _soak_like(2000)
    every = list(SyslogSource("t", clock).text_events(lines))
    kept = list(SyslogSource("t", clock, needs=needs).text_events(lines))

    def wanted(ev: Event) -> bool:
        return ev.kind != LOG or needs.wants((ev.attrs or {}).get("app"), ev.raw or "")

    assert kept == [ev for ev in every if wanted(ev)]
    assert any(ev.kind == LOG for ev in kept)


def test_udp_counts_every_datagram_as_an_event_or_unneeded(clock: Clock) -> None:
    """Over a real socket: events + unneeded == messages == datagrams sent, and the counter is a metric."""
    got = Collector()
    source = SyslogUdp("127.0.0.1:0", clock, 64 * 1024, 1 << 20, needs=registered_syslog_needs())
    lines = [line.encode() for line in _soak_like(3000)]

    async def main() -> None:
        await source.start(Sink(asyncio.get_running_loop(), got))
        try:
            assert source.bound is not None
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                for i, line in enumerate(lines):
                    tx.sendto(line, source.bound)
                    if i % 200 == 0:
                        await asyncio.sleep(0)  # let the loop drain: no kernel drops in this test
                await until(lambda: source.counters["datagrams"] + source.counters["kernel_drops"] >= len(lines))
        finally:
            await source.stop()

    asyncio.run(main())
    c = source.counters
    assert c["kernel_drops"] == 0
    assert c["datagrams"] == c["messages"] == len(lines)
    assert len(got.events) + c["unneeded"] == len(lines)
    assert c["unneeded"] > 0 and all(ev.kind != LOG for ev in got.events)
