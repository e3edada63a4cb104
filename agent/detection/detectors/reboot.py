"""Device reboots: coldStart/warmStart traps, and sysUpTime going backwards between two polls."""

from __future__ import annotations

from typing import Any

from watchstander.connectors.events import LOG, Event

from ...config.detectors import RebootConfig
from ...models import Finding
from .base import Detector, Emit, WindowTable

TICKS_WRAP = 2**32  # sysUpTime is TimeTicks (hundredths of a second, 32 bits): it wraps after 497 days
_WRAP_MARGIN = 100 * 86_400  # an uptime within a day of the wrap that restarts small wrapped around


class _Device:
    __slots__ = ("finding", "uptime")

    def __init__(self, _start: float) -> None:
        self.uptime: int | None = None
        self.finding: Finding | None = None


class RebootDetector(Detector):
    """A device restarted: it said so (coldStart, warmStart) or its uptime went backwards."""

    id = "reboot"
    kinds = (LOG,)
    techniques = ("T1529",)
    title = "Unexpected device reboot"
    confidence = 0.5
    playbook = None
    live_only = True

    def __init__(self, config: RebootConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        # Uptimes must outlive long poll intervals: keep a device for a day after it was last heard of.
        self.devices: WindowTable[_Device] = WindowTable(max(86_400.0, config.window_s), _Device)

    def feed(self, ev: Event) -> None:
        """Take reboot traps and polled uptimes."""
        attrs = ev.attrs
        if not attrs:
            return
        trap = attrs.get("snmp_trap")
        if trap in ("coldStart", "warmStart"):
            if trap == "warmStart" and not self.config.warm_start:
                return
            self._reboot(ev, attrs, trap)
        elif attrs.get("snmp_poll") == "system":
            ticks = attrs.get("sys_uptime")
            if not isinstance(ticks, int):
                return
            st = self.devices.get(self._key(ev, attrs), ev.time)
            previous, st.uptime = st.uptime, ticks
            if previous is not None and ticks < previous and not previous > TICKS_WRAP - _WRAP_MARGIN:
                self._reboot(ev, attrs, "sysUpTime decreased", previous_uptime=previous, uptime=ticks)

    @staticmethod
    def _key(ev: Event, attrs: dict[str, object]) -> str:
        return str(attrs.get("device") or attrs.get("agent") or ev.src or "?")

    def _reboot(self, ev: Event, attrs: dict[str, object], how: str, **details: Any) -> None:
        device = self._key(ev, attrs)
        st = self.devices.get(device, ev.time)
        f = st.finding
        if f is not None and ev.time - f.last_seen <= self.config.window_s:
            f.last_seen = ev.time
            f.count += 1
            f.add_evidence(ev.ref)
            signals = f.attributes.setdefault("signals", [])
            if how not in signals:
                signals.append(how)
            f.attributes.update(details)
            return
        severity = "medium" if how != "warmStart" else "low"
        st.finding = self.new_finding(f"{device} restarted ({how})", severity, {"device": device}, ev,
                                      signals=[how], **details)
        st.finding.count = 1
