"""SNMP polling of inventory devices as a daemon source: sysUpTime and the IF-MIB counters, every poll_s.

Each poll of a device that answers yields one `log` Event with `attrs["snmp_poll"] = "system"`
(sys_uptime) and one per interface with `attrs["snmp_poll"] = "interface"` (if_index, if_descr,
in_octets, out_octets from ifHCInOctets/ifHCOutOctets, in_errors, out_errors, high_speed_mbps from
ifHighSpeed, and sys_uptime so that rates can use the agent's own clock). A device that does not
answer is counted and logged (once, then at most every `LOG_EVERY_S` while it stays silent); the
other devices and the next polls go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from watchstander.connectors.errors import DeviceError, DeviceTimeout, DeviceUnreachable
from watchstander.connectors.events import LOG, Event
from watchstander.connectors.snmp import SnmpTarget, SnmpVarBind
from watchstander.connectors.snmp_walk import SnmpSession

from ..clock import Clock
from ..errors import ConfigError
from .sources import Sink, Source

if TYPE_CHECKING:  # the App pulls in the whole application: for types only
    from ..app.wiring import App

log = logging.getLogger(__name__)

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_COLUMNS: dict[str, str] = {
    "if_descr": "1.3.6.1.2.1.2.2.1.2",
    "in_errors": "1.3.6.1.2.1.2.2.1.14",
    "out_errors": "1.3.6.1.2.1.2.2.1.20",
    "in_octets": "1.3.6.1.2.1.31.1.1.1.6",  # ifHCInOctets
    "out_octets": "1.3.6.1.2.1.31.1.1.1.10",  # ifHCOutOctets
    "high_speed_mbps": "1.3.6.1.2.1.31.1.1.1.15",  # ifHighSpeed
}
LOG_EVERY_S = 600.0

TargetOf = Callable[[str], SnmpTarget]


class SnmpPollSource:
    """Polls the named devices every `poll_s` and hands the answers to the detectors as `log` events."""

    def __init__(self, devices: list[str], target_of: TargetOf, clock: Clock, *, poll_s: float,
                 timeout_s: float) -> None:
        self.name = "snmp-poll"
        self.devices = list(devices)
        self.target_of = target_of
        self.clock = clock
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.counters: Counter[str] = Counter()
        self._sink: Sink | None = None
        self._task: asyncio.Task[None] | None = None
        self._sessions: dict[str, SnmpSession] = {}  # one engine per device, kept between polls
        self._failing: dict[str, float] = {}  # device -> when its failure was last logged (monotonic)
        self._n = 0

    async def start(self, sink: Sink) -> None:
        """Start the polling loop (the first poll right away)."""
        self._sink = sink
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop polling; a poll in flight is cancelled."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
        await asyncio.sleep(0)  # let the engines' cancelled timer tasks finish on this loop

    def describe(self) -> str:
        """What it polls."""
        return f"snmp poll every {self.poll_s:g} s: {', '.join(self.devices)}"

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.poll_once()
            await asyncio.sleep(max(0.0, self.poll_s - (loop.time() - started)))

    async def poll_once(self) -> list[Event]:
        """Poll every device once, concurrently; feed and return the events."""
        self.counters["polls"] += 1
        results = await asyncio.gather(*(self._device(name) for name in self.devices))
        events = [ev for evs in results for ev in evs]
        if events and self._sink is not None:
            self.counters["events"] += len(events)
            self._sink.feed(events)
        return events

    async def _device(self, name: str) -> list[Event]:
        self.counters["device_polls"] += 1
        try:
            target = self.target_of(name)  # credentials are read again: a rotated key is used at the next poll
            session = self._sessions.get(name)
            if session is not None and session.target != target:
                session.close()
                session = None
            try:
                uptime, table = await self._read(name, session or SnmpSession(target))
            except DeviceTimeout:
                if session is None:
                    raise
                # A kept engine holds the agent's engine boots and time: after the agent restarted it may
                # wait on an answer that never comes. One more try with a fresh engine.
                uptime, table = await self._read(name, SnmpSession(target))
        except (DeviceTimeout, DeviceUnreachable) as exc:
            self.counters["no_answer"] += 1
            if self._should_log(name):
                log.warning("SNMP poll of %s: no answer: %s (said again in %g s at the earliest)", name, exc, LOG_EVERY_S)
            return []
        except DeviceError as exc:
            self.counters["errors"] += 1
            if self._should_log(name):
                log.warning("SNMP poll of %s failed: %s (said again in %g s at the earliest)", name, exc, LOG_EVERY_S)
            return []
        except Exception:  # the barrier around one device's poll (STYLE rule 2): the others go on
            self.counters["errors"] += 1
            if self._should_log(name):
                log.exception("SNMP poll of %s failed unexpectedly (said again in %g s at the earliest)", name,
                              LOG_EVERY_S)
            return []
        if self._failing.pop(name, None) is not None:
            log.info("SNMP poll of %s answers again", name)
        self.counters["answers"] += 1
        return self._events(name, target.address, uptime, table)

    async def _read(self, name: str, session: SnmpSession) -> tuple[SnmpVarBind, list[SnmpVarBind]]:
        """sysUpTime and the interface table through `session`, kept for the next poll if it answered."""
        self._sessions[name] = session
        try:
            try:
                return await asyncio.wait_for(self._exchange(session), self.timeout_s)
            except TimeoutError:
                raise DeviceTimeout(name, f"no complete SNMP answer from {session.target.endpoint} within "
                                          f"{self.timeout_s:g} s") from None
        except DeviceError:
            # A request left without its answer stays in the engine: start afresh next time.
            if self._sessions.get(name) is session:
                del self._sessions[name]
            session.close()
            raise

    async def _exchange(self, session: SnmpSession) -> tuple[SnmpVarBind, list[SnmpVarBind]]:
        (uptime,) = await session.get([SYS_UPTIME], timeout_s=self.timeout_s)
        table = await session.walk(list(IF_COLUMNS.values()), timeout_s=self.timeout_s)
        return uptime, table

    def _should_log(self, name: str) -> bool:
        now = time.monotonic()
        last = self._failing.get(name)
        if last is None or now - last >= LOG_EVERY_S:
            self._failing[name] = now
            return True
        return False

    def _ref(self) -> str:
        self._n += 1
        return f"{self.name}:{self._n}"

    def _events(self, name: str, address: str, uptime: SnmpVarBind, table: list[SnmpVarBind]) -> list[Event]:
        now = self.clock().timestamp()
        ticks = uptime.value if isinstance(uptime.value, int) else None
        system: dict[str, Any] = {"snmp_poll": "system", "device": name, "agent": address, "sys_uptime": ticks}
        events = [Event(now, self.name, LOG, src=address, host=name, proto="snmp", attrs=system, ref=self._ref())]
        rows: dict[int, dict[str, Any]] = {}
        for vb in table:
            for key, column in IF_COLUMNS.items():
                suffix = vb.oid[len(column) + 1:]
                if vb.oid.startswith(column + ".") and suffix.isdigit():
                    rows.setdefault(int(suffix), {})[key] = vb.value
                    break
        for index in sorted(rows):
            attrs: dict[str, Any] = {"snmp_poll": "interface", "device": name, "agent": address, "if_index": index,
                                     "sys_uptime": ticks, **rows[index]}
            events.append(Event(now, self.name, LOG, src=address, host=name, proto="snmp", attrs=attrs,
                                ref=self._ref()))
        return events


def snmp_poll_sources(app: App) -> list[Source]:
    """One poller for the devices of [sources.snmp] poll_devices (default: all with [devices.snmp])."""
    snmp = app.config.sources.snmp
    if snmp.poll_s <= 0:
        return []
    with_snmp = [d.name for d in app.devices if d.snmp is not None]
    names = list(snmp.poll_devices) or with_snmp
    missing = [n for n in names if n not in with_snmp]
    if missing:
        raise ConfigError(f"[sources.snmp] poll_devices: no [devices.snmp] for {', '.join(missing)}",
                          [("sources.snmp.poll_devices", f"no [devices.snmp] for {', '.join(missing)}")])
    if not names:
        log.warning("[sources.snmp] poll_s is set but no device has [devices.snmp]: nothing to poll")
        return []
    return [SnmpPollSource(names, app.devices.snmp, app.clock, poll_s=snmp.poll_s, timeout_s=snmp.poll_timeout_s)]
