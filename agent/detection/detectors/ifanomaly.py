"""Interface anomalies from polled IF-MIB counters: utilisation and error rates against a robust
per-interface baseline (the median and the median absolute deviation of recent samples)."""

from __future__ import annotations

from collections import deque
from statistics import median
from typing import Any

from watchstander.connectors.events import LOG, Event

from ...config.detectors import IfAnomalyConfig
from ...models import Finding
from .base import Detector, Emit, WindowTable

MAD_SCALE = 1.4826  # makes the MAD estimate a normal distribution's standard deviation
COUNTER32 = 2**32
MIN_INTERVAL_S = 0.01  # two samples closer than this give no rate


class _Interface:
    __slots__ = ("bps", "eps", "errors", "findings", "octets", "ticks", "time")

    def __init__(self, _start: float) -> None:
        self.ticks: int | None = None
        self.time = 0.0
        self.octets: tuple[int, int] | None = None
        self.errors: tuple[int, int] | None = None
        self.bps: deque[float] = deque()
        self.eps: deque[float] = deque()
        self.findings: dict[str, Finding] = {}


def outlier(value: float, history: deque[float], factor: float) -> bool:
    """Whether `value` lies more than `factor` scaled MADs above the median of `history`."""
    mid = median(history)
    mad = median(abs(x - mid) for x in history) * MAD_SCALE
    # A flat history has MAD 0: then anything above it by a tenth of the median (or at all, from 0) is out.
    return value > mid + factor * max(mad, 0.1 * mid)


class IfAnomalyDetector(Detector):
    """Traffic or errors on one interface far above what that interface usually shows, or a saturated link."""

    id = "ifanomaly"
    kinds = (LOG,)
    techniques = ("T1498", "T1048")
    title = "Interface traffic or error anomaly"
    confidence = 0.3
    playbook = None
    live_only = True

    def __init__(self, config: IfAnomalyConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.interfaces: WindowTable[_Interface] = WindowTable(max(86_400.0, config.window_s), _Interface)

    def feed(self, ev: Event) -> None:
        """Take one polled interface sample."""
        attrs = ev.attrs
        if not attrs or attrs.get("snmp_poll") != "interface":
            return
        device = str(attrs.get("device") or attrs.get("agent") or ev.src or "?")
        index = attrs.get("if_index")
        st = self.interfaces.get((device, index), ev.time)
        ticks = attrs.get("sys_uptime")
        ticks = ticks if isinstance(ticks, int) else None
        if st.ticks is not None and ticks is not None:
            if ticks <= st.ticks:  # the agent restarted (or answered twice): counters start over
                self._restart(st, ev, ticks)
                return
            dt = (ticks - st.ticks) / 100.0
        else:
            dt = ev.time - st.time
        octets = _pair(attrs, "in_octets", "out_octets")
        errors = _pair(attrs, "in_errors", "out_errors")
        last_octets, last_errors = st.octets, st.errors
        st.ticks, st.time, st.octets, st.errors = ticks, ev.time, octets, errors
        if not dt >= MIN_INTERVAL_S:  # also NaN: a rate over (next to) no time is no rate (and could overflow)
            return
        interface = str(attrs.get("if_descr") or f"ifIndex {index}")
        speed = attrs.get("high_speed_mbps")
        if octets is not None and last_octets is not None:
            d_in, d_out = octets[0] - last_octets[0], octets[1] - last_octets[1]
            if d_in >= 0 and d_out >= 0:  # a 64-bit counter going backwards was reset
                bps = max(d_in, d_out) * 8 / dt
                self._traffic(st, ev, device, interface, bps, speed if isinstance(speed, int) else 0)
        if errors is not None and last_errors is not None:
            d_err = sum((now - before) % COUNTER32 for now, before in zip(errors, last_errors))
            self._errors(st, ev, device, interface, d_err / dt)

    def _restart(self, st: _Interface, ev: Event, ticks: int) -> None:
        st.ticks, st.time, st.octets, st.errors = ticks, ev.time, None, None

    def _traffic(self, st: _Interface, ev: Event, device: str, interface: str, bps: float, speed_mbps: int) -> None:
        cfg = self.config
        util = bps / (speed_mbps * 1e6) if speed_mbps > 0 else None
        anomalous = None
        if util is not None and util >= cfg.saturation:
            anomalous = f"saturated: {util:.0%} of {speed_mbps} Mbit/s"
        elif len(st.bps) >= cfg.min_samples and outlier(bps, st.bps, cfg.mad_factor) and (
                util >= cfg.min_utilisation if util is not None else bps >= cfg.min_bps):
            anomalous = f"{_rate(bps)} against a usual {_rate(median(st.bps))}"
        _push(st.bps, bps, cfg.history)
        if anomalous:
            self._finding(st, ev, "traffic", f"Traffic anomaly on {device} {interface}: {anomalous}",
                          {"device": device, "interface": interface}, ("T1498", "T1048"),
                          bps=round(bps), utilisation=None if util is None else round(util, 4))

    def _errors(self, st: _Interface, ev: Event, device: str, interface: str, eps: float) -> None:
        cfg = self.config
        anomalous = (eps >= cfg.min_error_rate and len(st.eps) >= cfg.min_samples
                     and outlier(eps, st.eps, cfg.mad_factor))
        usual = median(st.eps) if st.eps else 0.0
        _push(st.eps, eps, cfg.history)
        if anomalous:
            self._finding(st, ev, "errors", f"Interface errors on {device} {interface}: {eps:.1f}/s against a "
                          f"usual {usual:.1f}/s", {"device": device, "interface": interface}, ("T1498",),
                          errors_per_s=round(eps, 3))

    def _finding(self, st: _Interface, ev: Event, metric: str, title: str, entities: dict[str, str],
                 techniques: tuple[str, ...], **attributes: Any) -> None:
        entities = {**entities, "metric": metric}
        f = st.findings.get(metric)
        if f is not None and ev.time - f.last_seen <= self.config.window_s:
            f.count += 1
            f.last_seen = ev.time
            f.title = title
            f.attributes.update(attributes)
            f.add_evidence(ev.ref)
            return
        st.findings[metric] = f = self.new_finding(title, "low", entities, ev, techniques=techniques, **attributes)
        f.count = 1


def _pair(attrs: dict[str, object], a: str, b: str) -> tuple[int, int] | None:
    x, y = attrs.get(a), attrs.get(b)
    return (x, y) if isinstance(x, int) and isinstance(y, int) else None


def _push(history: deque[float], value: float, cap: int) -> None:
    history.append(value)
    while len(history) > cap:
        history.popleft()


def _rate(bps: float) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.1f} {unit}"
    return f"{bps:.0f} bit/s"
