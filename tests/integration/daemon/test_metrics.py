"""The Prometheus endpoint of a real daemon on loopback: what was sent is what is counted."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.runkit import RunKit

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.daemon.daemon import Daemon
from watchstander.agent.daemon.metrics import MetricsEndpoint, start_metrics
from watchstander.agent.errors import ConfigError
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _lines(src: str, n: int) -> list[bytes]:
    return [f"<38>Nov 27 11:00:{i:02d} bastion sshd[{100 + i}]: Failed password for root from {src} "
            f"port {40000 + i} ssh2".encode() for i in range(n)]


def _app(tmp_path: Path, clock, metrics: dict[str, object]) -> App:  # type: ignore[no-untyped-def]
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"},
                           "sources": {"syslog_udp": ["127.0.0.1:0"], "syslog_tcp": ["127.0.0.1:0"], "flush_s": 0.2},
                           "metrics": metrics})
    return App(cfg, open_store(cfg.store.resolved_url()), clock)


def _scrape(endpoint: MetricsEndpoint) -> Samples:
    assert endpoint.address is not None
    host, port = endpoint.address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def _source_counters(samples: Samples, source: str) -> dict[str, float]:
    out = {}
    for (name, labels), value in samples.items():
        lab = dict(labels)
        if name == "watchstander_source_events_total" and lab["source"] == source:
            out[lab["counter"]] = value
    return out


def test_a_scrape_counts_what_was_sent_over_udp_and_tcp(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    app = _app(tmp_path, clock, {"enabled": True, "listen": "127.0.0.1:0"})
    udp_lines, tcp_lines = _lines("192.0.2.10", 15), _lines("192.0.2.20", 10)

    async def scenario() -> tuple[Samples, Samples, Daemon, list[dict[str, float]]]:
        daemon = Daemon(app)
        await daemon.start()
        endpoint = start_metrics(daemon)
        try:
            before = await asyncio.to_thread(_scrape, endpoint)
            udp_port, tcp_port = daemon.bound["udp"][0][1], daemon.bound["tcp"][0][1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for line in udp_lines:
                    s.sendto(line, ("127.0.0.1", udp_port))
            _reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
            writer.write(b"".join(line + b"\n" for line in tcp_lines))
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            deadline = time.monotonic() + 30
            while daemon.pipeline.events < len(udp_lines) + len(tcp_lines) or daemon.incidents_written < 2:
                assert time.monotonic() < deadline, "the daemon never saw every line"
                await asyncio.sleep(0.05)
            after = await asyncio.to_thread(_scrape, endpoint)
            # Taken on the loop right after the scrape, before a timer could change a counter.
            counters = [{k: float(v) for k, v in s.counters.items()} for s in daemon.sources]
            return before, after, daemon, counters
        finally:
            endpoint.stop()
            await daemon.stop()

    before, after, daemon, (udp_counters, tcp_counters) = asyncio.run(scenario())
    app.store.close()
    assert _value(before, "watchstander_pipeline_events_total") == 0
    assert _value(after, "watchstander_pipeline_events_total") == len(udp_lines) + len(tcp_lines)
    udp, tcp = (s for s in daemon.sources)
    # Every datagram is counted once by the UDP source, whatever its counters are called.
    assert len(udp_lines) in _source_counters(after, udp.name).values()
    assert _source_counters(after, udp.name) == udp_counters
    assert _source_counters(after, tcp.name) == tcp_counters
    assert _value(after, "watchstander_source_messages_total", source=tcp.name, kind="syslog-tcp") == len(tcp_lines)
    assert _value(after, "watchstander_incidents_written_total") >= 2
    assert _value(after, "watchstander_flushes_total") >= 1
    if hasattr(daemon, "flush_failures"):  # the robust flush's attributes are exported when present
        assert _value(after, "watchstander_flush_failures_total") == daemon.flush_failures == 0
        assert _value(after, "watchstander_flush_failing") == 0
    assert _value(after, "watchstander_store_readable") == 1
    assert _value(after, "process_resident_memory_bytes") > 0
    assert _value(after, "process_open_fds") > 0
    # The store's tables are read at scrape time: every state is there, at 0 in a fresh store.
    assert _value(after, "watchstander_suggestions", state="pending") == 0
    assert _value(after, "watchstander_runs", result="succeeded") == 0


def test_stop_releases_the_port_and_disabled_serves_nothing(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    app = _app(tmp_path, clock, {"enabled": True, "listen": "127.0.0.1:0"})
    (tmp_path / "off").mkdir()
    off = _app(tmp_path / "off", clock, {})

    async def scenario() -> tuple[tuple[str, int], MetricsEndpoint]:
        daemon = Daemon(app)
        endpoint = start_metrics(daemon)
        try:
            assert endpoint.address is not None
            samples = await asyncio.to_thread(_scrape, endpoint)
            assert _value(samples, "watchstander_pipeline_events_total") == 0
            return endpoint.address, start_metrics(Daemon(off))
        finally:
            endpoint.stop()
            endpoint.stop()  # idempotent

    address, disabled = asyncio.run(scenario())
    assert disabled.address is None
    disabled.stop()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(address)
    app.store.close()
    off.store.close()


@pytest.mark.parametrize("listen", ["localhost", "127.0.0.1:99999", ":9464"])
def test_listen_must_be_host_and_port(listen: str) -> None:
    with pytest.raises(ConfigError):
        validate_config({"metrics": {"enabled": True, "listen": listen}})


def test_a_port_in_use_is_a_config_error_naming_the_key(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app = _app(tmp_path, clock, {"enabled": True, "listen": f"127.0.0.1:{taken.getsockname()[1]}"})
        with pytest.raises(ConfigError, match=r"\[metrics\] listen"):
            start_metrics(Daemon(app))
    app.store.close()


def test_suggestions_are_counted_by_state_from_the_store(tmp_path: Path) -> None:
    kit = RunKit(tmp_path / "agent", extra_toml='[metrics]\nenabled = true\nlisten = "127.0.0.1:0"\n'
                                                '[sources]\nsyslog_udp = []\n')
    try:
        params = {"interface": "lo", "duration_s": 10}
        kit.propose("capture-incident-traffic", {**params, "addresses": ["127.0.0.2"]})
        kit.approved("capture-incident-traffic", {**params, "addresses": ["127.0.0.3"]})
        endpoint = start_metrics(Daemon(kit.app))
        try:
            samples = _scrape(endpoint)
        finally:
            endpoint.stop()
    finally:
        kit.close()
    assert _value(samples, "watchstander_suggestions", state="pending") == 1
    assert _value(samples, "watchstander_suggestions", state="approved") == 1
    assert _value(samples, "watchstander_suggestions", state="rejected") == 0
    assert _value(samples, "watchstander_runs", result="succeeded") == 0
