"""Issue 13: a hostile record never ends a followed file or a syslog listener; it is logged, counted, skipped."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.daemon.daemon import Daemon
from watchstander.agent.daemon.follow import FollowedFile
from watchstander.agent.store.incidents import IncidentStore
from watchstander.agent.store.schema import open_store
from watchstander.connectors.barrier import guarded_events
from watchstander.connectors.events import Event
from watchstander.connectors.formats import FORMATS, Format
from watchstander.connectors.ids import EveLines
from watchstander.connectors.skips import SkipCounter

pytestmark = pytest.mark.integration


def alert(src: str, sig: str = "ET EXPLOIT test") -> str:
    return json.dumps({"timestamp": "2026-11-27T11:00:00.000000+0000", "event_type": "alert", "src_ip": src,
                       "dest_ip": "10.0.0.25", "src_port": 1, "dest_port": 80, "proto": "TCP",
                       "alert": {"signature": sig, "signature_id": 9, "category": "x", "severity": 1}})


async def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def _follow(tmp_path: Path, clock, lines: list[str], first: str | None = None) -> tuple[list[str], FollowedFile]:  # type: ignore[no-untyped-def]
    """Run a daemon following one file; append `lines` once it runs; return the attackers stored."""
    eve = tmp_path / "eve.json"
    eve.write_text(first + "\n" if first else "", encoding="utf-8")
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"},
                           "sources": {"files": [str(eve)], "flush_s": 0.2}})
    store = open_store(cfg.store.resolved_url())
    follower: list[FollowedFile] = []

    async def scenario() -> None:
        daemon = Daemon(App(cfg, store, clock))
        follower.extend(s for s in daemon.sources if isinstance(s, FollowedFile))
        await daemon.start()
        await asyncio.sleep(0.2)
        with open(eve, "a", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line + "\n")
                fh.flush()
                await asyncio.sleep(0.05)
        repo = IncidentStore(store, clock)
        try:
            await _wait_for(lambda: any("203.0.113.9" in i.entities().get("attacker", []) for i in repo.list()),
                            timeout=15.0)
        finally:
            await daemon.stop()

    try:
        asyncio.run(scenario())
        incidents = IncidentStore(store, clock).list()
    finally:
        store.close()
    return sorted({a for i in incidents for a in i.entities().get("attacker", [])}), follower[0]


def test_deeply_nested_json_does_not_stop_the_follower(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    nested = '{"event_type": "alert", "x": ' + "[" * 200_000 + "]" * 200_000 + "}"
    attackers, follower = _follow(tmp_path, clock, [nested, alert("203.0.113.9")], first=alert("198.51.100.1"))
    assert "203.0.113.9" in attackers
    assert follower.skips.total >= 1


def test_nested_objects_and_surrogates_do_not_stop_the_follower(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    nested = '{"event_type": "alert", "alert": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}"
    attackers, _ = _follow(tmp_path, clock, [nested, alert("198.51.100.2", "ET \ud800 lone"),
                                             alert("203.0.113.9")])
    assert {"198.51.100.2", "203.0.113.9"} <= set(attackers)


def test_a_record_that_makes_the_decoder_raise_is_skipped_and_counted(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    # An EVE "alert" whose src_ip is an object: every field read by position must cope, and if a
    # decoder raises anything at all, the follower's barrier counts the line and goes on.
    odd = json.dumps({"timestamp": "2026-11-27T11:00:00+0000", "event_type": "dns", "dns": {"queries": [[]]}})
    attackers, _ = _follow(tmp_path, clock, [odd, "{" * 10, alert("203.0.113.9")], first=alert("198.51.100.1"))
    assert "203.0.113.9" in attackers


def test_udp_syslog_with_absurd_times_leaves_readable_incidents(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"},
                           "sources": {"syslog_udp": ["127.0.0.1:0"], "flush_s": 0.2}})
    store = open_store(cfg.store.resolved_url())
    stamps = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]

    async def scenario() -> None:
        daemon = Daemon(App(cfg, store, clock))
        await daemon.start()
        port = daemon.bound["udp"][0][1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(12):
                s.sendto(f"<34>1 {stamps[i % 2]} bastion sshd {i} - - Failed password for root from "
                         f"192.0.2.77 port {40000 + i} ssh2".encode(), ("127.0.0.1", port))
                s.sendto(f"<38>Nov 27 11:00:{i:02d} bastion sshd[{i}]: Failed password for admin from "
                         f"192.0.2.88 port {41000 + i} ssh2".encode(), ("127.0.0.1", port))
        repo = IncidentStore(store, clock)
        try:
            await _wait_for(lambda: len(repo.list()) >= 2)
        finally:
            await daemon.stop()

    try:
        asyncio.run(scenario())
        incidents = IncidentStore(store, clock).list()
    finally:
        store.close()
    assert {a for i in incidents for a in i.entities().get("attacker", [])} >= {"192.0.2.77", "192.0.2.88"}
    assert all(i.verdict is not None for i in incidents)
    now = clock().timestamp()
    assert all(now - 86400 <= i.last_seen <= now + 86400 for i in incidents)


class StrictEve:
    """A line decoder that lets json.loads raise (RecursionError on deep nesting), as EveLines did once."""

    def __init__(self, source: str, now, skips: SkipCounter) -> None:  # type: ignore[no-untyped-def]
        self.inner = EveLines(source, skips, now)
        self.skips = skips

    def events(self, lines: Iterable[bytes], first_line: int = 1) -> Iterator[Event]:
        for n, raw in enumerate(lines, first_line):
            json.loads(raw)
            yield from self.inner.events([raw], n)


def test_a_decoder_that_raises_costs_one_line_not_the_follower(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    """The barrier: whatever a decoder raises, the line is counted and the follower reads on."""
    formats = {**FORMATS, "eve": Format("eve", FORMATS["eve"].read_file, StrictEve)}
    eve = tmp_path / "eve.json"
    eve.write_text(alert("198.51.100.1") + "\n", encoding="utf-8")
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"}, "sources": {"flush_s": 0.2}})
    store = open_store(cfg.store.resolved_url())
    follower = FollowedFile(eve, clock, interval=0.05, formats=formats)

    async def scenario() -> None:
        daemon = Daemon(App(cfg, store, clock), source_kinds={"files": lambda app: [follower]})
        await daemon.start()
        await asyncio.sleep(0.2)
        with open(eve, "a", encoding="utf-8") as fh:
            fh.write("[" * 100_000 + "\n" + "{not json\n" + alert("203.0.113.9") + "\n")
        repo = IncidentStore(store, clock)
        try:
            await _wait_for(lambda: any("203.0.113.9" in i.entities().get("attacker", []) for i in repo.list()),
                            timeout=15.0)
        finally:
            await daemon.stop()

    try:
        asyncio.run(scenario())
    finally:
        store.close()
    assert follower.skips.counts["decoder error (RecursionError)"] == 1
    assert follower.skips.counts["decoder error (JSONDecodeError)"] == 1


def test_guarded_events_resumes_after_the_line_that_raised() -> None:
    skips = SkipCounter(logging.getLogger("tests.barrier"), "t", monotonic=lambda: 0.0)
    decoder = StrictEve("eve", lambda: datetime(2026, 11, 27, 12, tzinfo=timezone.utc), skips)
    lines = [alert("198.51.100.1").encode(), b"[" * 100_000, alert("198.51.100.2").encode(), b"{",
             alert("198.51.100.3").encode()]
    events = list(guarded_events(decoder, lines, first_line=10))
    assert [e.src for e in events] == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    assert [e.ref for e in events] == ["eve:10", "eve:12", "eve:14"]
    assert skips.total == 2
