"""Live packet capture as a daemon source: one thread per interface, frames decoded like pcap files.

The capture thread reads batches from the kernel (`connectors.live`), decodes them with the pcap
reader's `PacketDecoder` and hands the events to the loop with `Sink.feed_threadsafe`. At most
`MAX_IN_FLIGHT` batches wait on the loop: when detection falls behind, the thread stops reading,
the kernel's ring fills, and what it cannot hold is counted as `kernel_drops`, never queued
without bound in the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter

from watchstander.connectors.events import Event
from watchstander.connectors.live import (
    BpfError,
    CaptureOptions,
    LiveCapture,
    compile_bpf,
    interface_linktype,
)
from watchstander.connectors.packets import PacketDecoder
from watchstander.connectors.skips import SkipCounter

from ..app.wiring import App
from ..config.capture import CaptureSource
from .sources import Sink, Source

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64      # batches handed to the loop and not yet fed
POLL_S = 0.2            # how long the thread waits for frames before looking at the stop flag
STATS_EVERY_S = 1.0     # how often the kernel's counters are read
JOIN_S = 5.0


class LiveCaptureSource:
    """Frames from one interface, filtered by BPF in the kernel, decoded into network events."""

    def __init__(self, config: CaptureSource) -> None:
        self.config = config
        self.name = f"capture:{config.interface}"
        self.counters: Counter[str] = Counter()
        self.skips = SkipCounter(log, self.name)
        self.decoder = PacketDecoder(self.name, self.skips)
        self._capture: LiveCapture | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._in_flight = threading.Semaphore(MAX_IN_FLIGHT)

    def options(self) -> CaptureOptions:
        """The capture options from the config, the filter compiled for the interface's link type."""
        c = self.config
        program = None
        if c.bpf.strip():
            try:
                program = compile_bpf(c.bpf, interface_linktype(c.interface))
            except BpfError as exc:
                raise BpfError(f"capture on {c.interface}: {exc}") from exc
        return CaptureOptions(
            interface=c.interface, program=program, snaplen=c.snaplen, ring_bytes=c.ring_mb << 20,
            block_bytes=c.block_kb << 10, block_timeout_ms=c.block_timeout_ms, promiscuous=c.promiscuous,
            method=c.method, outgoing=c.outgoing,
        )

    async def start(self, sink: Sink) -> None:
        """Open the packet socket (CaptureError naming the interface if it cannot) and start the thread."""
        self._capture = LiveCapture(self.options())
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, args=(self._capture, sink),
                                        name=self.name, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the thread, then close the socket with its last kernel counts."""
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, JOIN_S)
            self._thread = None
        if self._capture is not None:
            self._capture.close()
            self._count_kernel(self._capture)
            self._capture = None

    def describe(self) -> str:
        """The interface, the way of reading and the filter."""
        c = self.config
        return f"capture {c.interface} ({c.method}{', bpf ' + repr(c.bpf) if c.bpf.strip() else ''})"

    def _run(self, capture: LiveCapture, sink: Sink) -> None:
        try:
            self._read_until_stopped(capture, sink)
        except Exception:  # the barrier around the capture thread (STYLE rule 2): the daemon goes on
            self.counters["errors"] += 1
            log.exception("%s: capture thread failed; this interface is no longer captured", self.name)

    def _read_until_stopped(self, capture: LiveCapture, sink: Sink) -> None:
        decode, linktype = self.decoder.decode, capture.linktype
        next_stats = time.monotonic() + STATS_EVERY_S
        while not self._stopping.is_set():
            frames = capture.read(POLL_S)
            if frames:
                events: list[Event] = []
                for ts, frame in frames:
                    events.extend(decode(frame, linktype, ts))
                self.counters["frames"] += len(frames)
                self.counters["bytes"] += sum(len(f) for _, f in frames)
                if events:
                    self.counters["events"] += len(events)
                    self._hand_over(sink, events)
            now = time.monotonic()
            if now >= next_stats:
                next_stats = now + STATS_EVERY_S
                capture.kernel_stats()
                self._count_kernel(capture)

    def _hand_over(self, sink: Sink, events: list[Event]) -> None:
        while not self._in_flight.acquire(timeout=POLL_S):
            if self._stopping.is_set():
                self.counters["dropped_at_stop"] += len(events)
                return
        sink.feed_threadsafe(events)
        # Callbacks run in order: this one runs once the batch has been fed.
        sink.loop.call_soon_threadsafe(self._in_flight.release)

    def _count_kernel(self, capture: LiveCapture) -> None:
        self.counters["kernel_packets"] = capture.stats.packets
        self.counters["kernel_drops"] = capture.stats.drops
        self.counters["outgoing_skipped"] = capture.outgoing_skipped
        self.counters["skipped"] = sum(self.skips.counts.values())


def capture_sources(app: App) -> list[Source]:
    """One live capture per [[sources.capture]] entry."""
    return [LiveCaptureSource(c) for c in app.config.sources.capture]
