"""Exfiltration by volume: an internal host sending far more out than it usually does.

Bytes out per internal host are summed over fixed windows (`window_s`); the baseline is the median
and median absolute deviation of the host's last `history` windows (idle windows count as zero).
A window is unusual once it passes the largest of `min_bytes`, `factor` x median, median +
`mad_factor` x 1.4826 x MAD, and `peak_factor` x the largest window of the history (so a nightly
backup inside the history is part of the baseline), and only after the host has been watched for
`warmup_windows`.

Volumes come from flow records only: NetFlow/IPFIX `bytes` (one direction per record), or Zeek's
`orig_bytes` for an outbound connection and `resp_bytes` for an inbound one (an internal server
answering an external client with a large download). Packet events carry no length, so a pcap or a
live capture feeds this detector nothing. Memory: at most `max_hosts` hosts (least recently active
evicted), each about 8 x `history` bytes plus up to DEST_CAP destinations of its current window.
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict
from statistics import median
from typing import Any, ClassVar

from watchstander.connectors.events import NETWORK, Event

from ...config.detectors import ExfilConfig
from ...models import Finding
from .addresses import DestinationAllowList, NetworkSet
from .base import Detector, Emit

DEST_CAP = 8
MAX_FLOW_BYTES = 1 << 50  # a single flow record claiming more than a petabyte is broken or forged
MAD_SCALE = 1.4826
_NUMBER = (float, int)  # a tuple: `float | int` would build a union object on every call


def volume(count: float) -> str:
    """Bytes as a person reads them: 812 MB, 2.1 GB."""
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if count >= size:
            value = count / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{count:.0f} B"


def span(seconds: float) -> str:
    """A window length as a person says it."""
    if seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:g} s"


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FLOW_BYTES:
        return None
    return value


def threshold(history: array[float], cfg: ExfilConfig) -> float:
    """The volume above which a window is unusual for a host with this history."""
    if not history:
        return float(cfg.min_bytes)
    med = median(history)
    mad = median(abs(h - med) for h in history)
    return max(float(cfg.min_bytes), med * cfg.factor, med + cfg.mad_factor * MAD_SCALE * mad,
               cfg.peak_factor * max(history))


class _Host:
    __slots__ = ("current", "dests", "finding", "history", "limit", "watched", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.current = 0
        self.history = array("d")
        self.watched = 0  # windows closed since the host was first seen
        self.dests: dict[tuple[str, int], int] = {}
        self.limit = math.inf
        self.finding: Finding | None = None


class ExfilDetector(Detector):
    """Bytes sent out per internal host and window, against the host's own baseline."""

    id = "exfil"
    kinds = (NETWORK,)
    techniques = ("T1048", "T1041")
    title = "Exfiltration by volume"
    confidence = 0.5
    playbook = "capture-incident-traffic"
    # The network events it needs, as (source inside, destination inside) judged on `internal`:
    # one end inside and one outside. The pipeline skips the others, which `feed` ignores anyway.
    network_ends: ClassVar[frozenset[tuple[bool, bool]]] = frozenset({(True, False), (False, True)})

    def __init__(self, config: ExfilConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.internal = NetworkSet(config.internal_networks)
        self.allow = DestinationAllowList(config.allow)
        self.hosts: OrderedDict[str, _Host] = OrderedDict()

    def feed(self, ev: Event) -> None:
        """Add one flow record's outbound bytes to its internal host's window."""
        attrs = ev.attrs
        if not isinstance(attrs, dict) or attrs.get("flow") is not True:
            return
        t = ev.time
        if not isinstance(t, _NUMBER) or not math.isfinite(t):
            return
        src, dst, internal = ev.src, ev.dst, self.internal
        src_in, dst_in = src in internal, dst in internal
        if src_in and not dst_in and isinstance(dst, str):
            out = _count(attrs.get("orig_bytes"))
            if out is None:
                out = _count(attrs.get("bytes"))
            host, remote, port = src, dst, ev.dport
        elif dst_in and not src_in and isinstance(src, str):
            out = _count(attrs.get("resp_bytes"))
            host, remote, port = dst, src, ev.sport
        else:
            return
        if not out or not isinstance(host, str) or self.allow.allows(remote, port):
            return
        st = self._host(host, int(t // self.config.window_s))
        st.current += out
        key = (remote, port if isinstance(port, int) else 0)
        if key in st.dests or len(st.dests) < DEST_CAP:
            st.dests[key] = st.dests.get(key, 0) + out
        if st.current >= st.limit:
            self._report(host, st, ev)

    def _host(self, host: str, window: int) -> _Host:
        hosts, cfg = self.hosts, self.config
        st = hosts.get(host)
        if st is None:
            if len(hosts) >= cfg.max_hosts:
                hosts.popitem(last=False)
            st = hosts[host] = _Host(window)
        else:
            hosts.move_to_end(host)
        if window > st.window:
            closed = min(window - st.window, cfg.history)
            history = st.history
            history.append(float(st.current))
            history.extend([0.0] * (closed - 1))
            if len(history) > cfg.history:
                del history[: len(history) - cfg.history]
            st.watched += window - st.window
            st.window, st.current, st.finding = window, 0, None
            st.dests.clear()
            st.limit = threshold(history, cfg) if st.watched >= cfg.warmup_windows else math.inf
        return st

    def _report(self, host: str, st: _Host, ev: Event) -> None:
        cfg = self.config
        (remote, port), top = max(st.dests.items(), key=lambda kv: kv[1]) if st.dests else (("?", 0), 0)
        baseline = median(st.history) if st.history else 0.0
        where = f"[{remote}]" if ":" in remote else remote
        title = (f"Unusual outbound volume from {host}: {volume(st.current)} in {span(cfg.window_s)} "
                 f"(baseline {volume(baseline)}), mostly to {where}:{port}")
        f = st.finding
        if f is None:
            f = st.finding = self.new_finding(title, "high", {"victim": host, "attacker": remote}, ev,
                                              first_seen=min(ev.time, st.window * cfg.window_s))
        f.title = title
        f.count = st.current
        f.last_seen = max(f.last_seen, ev.time)
        f.counts["bytes_out"] = st.current
        f.counts["baseline_bytes"] = int(baseline)
        f.counts["top_destination_bytes"] = top
        f.attributes["threshold_bytes"] = int(st.limit)
        f.attributes["top_destinations"] = [f"{a}:{p}" for (a, p), _ in
                                            sorted(st.dests.items(), key=lambda kv: -kv[1])]
        f.add_evidence(ev.ref)
