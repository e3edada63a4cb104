"""Prometheus metrics: one collector that reads the daemon's live state when it is scraped.

Nothing else imports prometheus_client: sources keep plain `Counter`s, the daemon and the pipeline
plain attributes, and the store its tables; `DaemonCollector.collect()` reads them all in the
HTTP server's thread at scrape time. The registry is the collector's own (never the library's
global one), so two daemons in one process (tests) never share series.

Reads from the loop's objects happen without the loop's help: a `Counter` is copied whole (one C
call under the GIL) before it is walked, so a source adding a key during a scrape cannot break it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ..errors import ConfigError
from ..store.runs import RUN_STATES, runs
from ..store.suggestions import STATES, suggestions
from .sources import Source, split_host_port

if TYPE_CHECKING:  # read through the daemon at scrape time; types only here
    from ..app.wiring import App
    from ..detection.pipeline import Pipeline

log = logging.getLogger(__name__)

PREFIX = "watchstander"

# Source counter keys with a family of their own (what an operator alerts on); every other key
# of `source.counters` is exported under watchstander_source_events_total{counter=...}.
WELL_KNOWN: dict[str, tuple[str, str]] = {
    "messages": ("source_messages", "Messages a source took in (syslog lines or frames, traps, records)"),
    "skipped": ("source_skipped", "Messages a source could not decode and skipped"),
    "dropped": ("source_dropped", "Messages a source dropped (overload, caps, overlong frames)"),
    "kernel_drops": ("source_kernel_drops", "Datagrams or packets the kernel dropped before the source read them"),
    "unneeded": ("source_unneeded", "Syslog lines parsed that no detector needs (counted, no Event built)"),
}


class MetricsSubject(Protocol):
    """What the collector reads from the daemon (agent/daemon/daemon.py's `Daemon`)."""

    app: App
    sources: list[Source]
    pipeline: Pipeline
    flushes: int
    incidents_written: int


def _copy(counter: Mapping[str, int | float]) -> dict[str, int | float]:
    # dict() of a dict copies in one C call while holding the GIL; a retry covers the rare
    # mapping whose copy goes through Python-level iteration.
    for _ in range(3):
        try:
            return dict(counter)
        except RuntimeError:
            continue
    return {}


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _skip_counters(source: Source) -> Iterator[tuple[str, Mapping[str, int]]]:
    """The SkipCounter of a source (its own, or its decoder's): (what, counts by reason) pairs."""
    skips = getattr(source, "skips", None)
    if skips is None:
        skips = getattr(getattr(source, "decoder", None), "skips", None)
    if skips is None:
        return
    for what in ("counts", "repaired", "ignored"):
        counts = getattr(skips, what, None)
        if isinstance(counts, Mapping):
            yield ("skipped" if what == "counts" else what), counts


def _kind(source: Source) -> str:
    return source.name.partition(":")[0] or source.name


class DaemonCollector(Collector):
    """Every daemon metric, read from live state at scrape time."""

    def __init__(self, daemon: MetricsSubject) -> None:
        self.daemon = daemon

    def collect(self) -> Iterable[Metric]:
        """One scrape: sources, pipeline, flushes, triage, and the store's suggestions and runs."""
        yield from self._sources()
        yield from self._pipeline()
        yield from self._flush()
        yield from self._triage()
        yield from self._store()

    def _sources(self) -> Iterator[Metric]:
        labels = ["source", "kind"]
        events = CounterMetricFamily(f"{PREFIX}_source_events", "Every counter a source keeps, by name",
                                     labels=[*labels, "counter"])
        known = {key: CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
                 for key, (name, doc) in WELL_KNOWN.items()}
        skipped = CounterMetricFamily(f"{PREFIX}_source_records",
                                      "Records a decoder skipped, repaired or ignored, by reason",
                                      labels=[*labels, "outcome", "reason"])
        for source in list(self.daemon.sources):
            ids = [source.name, _kind(source)]
            for key, value in sorted(_copy(source.counters).items()):
                number = _number(value)
                if number is None:
                    continue
                events.add_metric([*ids, key], number)
                if key in known:
                    known[key].add_metric(ids, number)
            for outcome, counts in _skip_counters(source):
                for reason, n in sorted(_copy(counts).items()):
                    skipped.add_metric([*ids, outcome, reason], float(n))
        yield events
        yield from known.values()
        yield skipped

    def _pipeline(self) -> Iterator[Metric]:
        pipeline = self.daemon.pipeline
        yield CounterMetricFamily(f"{PREFIX}_pipeline_events", "Events fed to the detectors",
                                  value=pipeline.events)
        yield GaugeMetricFamily(f"{PREFIX}_pipeline_findings_tracked",
                                "Findings the detectors still track (inside the correlation window)",
                                value=len(pipeline.findings))
        failures = CounterMetricFamily(f"{PREFIX}_detector_failures", "Detector calls that raised",
                                       labels=["detector"])
        for name, n in sorted(_copy(pipeline.failures).items()):
            failures.add_metric([name], float(n))
        yield failures
        # Per-detector time, once the pipeline keeps it (seconds by detector id).
        seconds = getattr(pipeline, "detector_seconds", None)
        if isinstance(seconds, Mapping):
            family = CounterMetricFamily(f"{PREFIX}_detector_seconds", "Time spent inside each detector",
                                         labels=["detector"])
            for name, s in sorted(_copy(seconds).items()):
                family.add_metric([name], float(s))
            yield family

    def _flush(self) -> Iterator[Metric]:
        d = self.daemon
        yield CounterMetricFamily(f"{PREFIX}_flushes", "Flushes that stored findings", value=d.flushes)
        yield CounterMetricFamily(f"{PREFIX}_incidents_written", "Incidents created or updated by flushes",
                                  value=d.incidents_written)
        # Attributes of the robust flush; absent on a daemon that does not keep them (yet).
        optional = (
            ("flush_failures", CounterMetricFamily, "Flushes that failed (their findings are retried)"),
            ("last_flush_duration_s", GaugeMetricFamily, "Duration of the last flush, in seconds"),
            ("pending_findings", GaugeMetricFamily, "Findings waiting to be stored"),
            ("poisoned_findings", CounterMetricFamily, "Findings that could not be stored and were set aside"),
            ("flush_failing_for_s", GaugeMetricFamily, "How long flushes have been failing (0 when healthy)"),
            ("reloads", CounterMetricFamily, "Configuration reloads applied"),
            ("reload_failures", CounterMetricFamily, "Configuration reloads refused"),
            ("watchdog_pings", CounterMetricFamily, "WATCHDOG=1 notifications sent by the event loop"),
            ("spool_findings", GaugeMetricFamily, "Findings in the local spool, waiting for the store"),
            ("spool_bytes", GaugeMetricFamily, "Bytes of the findings in the local spool"),
            ("spool_dropped", CounterMetricFamily, "Spooled findings dropped, oldest first, when the spool was full"),
            ("spool_delivered", CounterMetricFamily, "Spooled findings the store took"),
            ("store_ready", GaugeMetricFamily, "1 once the store was reached and migrated (0: spooling, waiting)"),
            ("recovery_attempts", CounterMetricFamily, "Attempts to reach and migrate a store away at start-up"),
        )
        for attr, family, doc in optional:
            value = _number(getattr(d, attr, None))
            if value is not None:
                name = attr[:-2] + "_seconds" if attr.endswith("_s") else attr
                yield family(f"{PREFIX}_{name}", doc, value=value)
        if hasattr(d, "last_flush_error"):  # a daemon without the robust flush has neither
            yield GaugeMetricFamily(f"{PREFIX}_flush_failing", "1 while the last flush failed",
                                    value=1.0 if getattr(d, "last_flush_error", None) else 0.0)

    def _triage(self) -> Iterator[Metric]:
        # Only a service the daemon already built: a scrape never constructs one.
        service = vars(self.daemon.app).get("triage")
        calls = _number(getattr(service, "model_calls", None))
        if calls is not None:
            yield CounterMetricFamily(f"{PREFIX}_model_calls", "Calls made to the triage model", value=calls)
        fallbacks = getattr(service, "fallbacks", None)
        if isinstance(fallbacks, Mapping):
            family = CounterMetricFamily(f"{PREFIX}_model_fallbacks",
                                         "Verdicts that fell back to the baseline analyst, by reason",
                                         labels=["reason"])
            for reason, n in sorted(_copy(fallbacks).items()):
                family.add_metric([reason], float(n))
            yield family

    def _store(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_store_readable", "1 if the scrape could read the store")
        try:
            with self.daemon.app.store.engine.connect() as conn:
                by_state = conn.execute(select(suggestions.c.state, func.count()).group_by(suggestions.c.state)).all()
                by_result = conn.execute(select(runs.c.state, func.count()).group_by(runs.c.state)).all()
        except SQLAlchemyError as exc:  # a locked or unreadable store must not fail the whole scrape
            log.debug("metrics: cannot read the store: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield _by_label(f"{PREFIX}_suggestions", "Suggestions in the store, by state", "state", STATES, by_state)
        yield _by_label(f"{PREFIX}_runs", "Playbook runs in the store, by result", "result", RUN_STATES, by_result)


def _by_label(name: str, doc: str, label: str, known: Sequence[str], rows: Sequence[Any]) -> GaugeMetricFamily:
    # Every known value is present (at 0 when absent) so that an alert on it has a series to watch.
    counts = dict.fromkeys(known, 0) | {str(r[0]): int(r[1]) for r in rows}
    family = GaugeMetricFamily(name, doc, labels=[label])
    for value, n in sorted(counts.items()):
        family.add_metric([value], float(n))
    return family


def build_registry(daemon: MetricsSubject) -> CollectorRegistry:
    """A registry of the daemon's own: its collector and this process's RSS, CPU and descriptors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(daemon))
    ProcessCollector(registry=registry)
    return registry


@dataclass
class MetricsEndpoint:
    """The running HTTP endpoint (or nothing, when [metrics] is off); `stop()` is always safe."""

    address: tuple[str, int] | None = None
    _server: WSGIServer | None = None
    _thread: threading.Thread | None = None

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None


def start_metrics(daemon: MetricsSubject) -> MetricsEndpoint:
    """Serve /metrics on [metrics] listen when [metrics] enabled; a no-op endpoint otherwise."""
    config = daemon.app.config.metrics
    if not config.enabled:
        return MetricsEndpoint()
    host, port = split_host_port(config.listen)
    try:
        server, thread = start_http_server(port, host, registry=build_registry(daemon))
    except OSError as exc:
        raise ConfigError(f"[metrics] listen: cannot listen on {config.listen}: {exc.strerror or exc}",
                          [("metrics.listen", str(exc))]) from exc
    bound = (str(server.server_address[0]), int(server.server_address[1]))
    log.info("metrics on http://%s:%d/metrics", *bound)
    return MetricsEndpoint(bound, server, thread)
