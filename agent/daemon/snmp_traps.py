"""SNMP traps and informs as a daemon source: one receiver per [sources] snmp_traps entry.

Each notification becomes one `log` Event with `attrs["snmp_trap"]` naming it (coldStart,
warmStart, linkDown, linkUp, authenticationFailure, or "other" with the trap OID); a v1/v2c
datagram with a community that is not configured becomes a "badCommunity" event from its sender
(someone guessing communities). Counters: the receiver's (datagrams, notifications, malformed,
bad_community, unprocessed, v3_unprocessed, errors), this source's `events`, and `kernel_drops`
(datagrams the kernel dropped with the receive buffer full, from /proc/net/udp, read every second).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from watchstander.connectors.events import LOG, Event, excerpt
from watchstander.connectors.snmp_traps import Notification, TrapReceiver, TrapUser

from ..clock import Clock
from .sources import Sink, Source, split_host_port
from .udp_drops import DROPS_POLL_S, proc_udp_drops_at

if TYPE_CHECKING:  # the App pulls in the whole application: for types only
    from ..app.wiring import App

log = logging.getLogger(__name__)



class SnmpTrapSource:
    """Traps and informs on one HOST:PORT, handed to the detectors as `log` events."""

    def __init__(self, hostport: str, clock: Clock, *, communities: list[str], users: list[TrapUser],
                 devices_by_address: dict[str, str] | None = None) -> None:
        self.name = f"snmp-trap:{hostport}"
        self.hostport = hostport
        self.clock = clock
        self.devices_by_address = devices_by_address or {}
        host, port = split_host_port(hostport)
        self.receiver = TrapReceiver(host, port, communities=communities, users=users,
                                     on_notification=self._notification, on_bad_community=self._bad_community)
        self.counters: Counter[str] = self.receiver.counters
        self._sink: Sink | None = None
        self._n = 0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def bound(self) -> tuple[str, int] | None:
        """The address the receiver is bound to, once started."""
        return self.receiver.bound

    async def start(self, sink: Sink) -> None:
        """Bind the socket and start receiving."""
        self._sink = sink
        await self.receiver.start()
        self._timer = sink.loop.call_later(DROPS_POLL_S, self._poll_drops, sink.loop)

    async def stop(self) -> None:
        """Close the socket."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.refresh_drops()
        self.receiver.close()
        await asyncio.sleep(0)  # let the transport finish closing on this loop

    def refresh_drops(self) -> None:
        """Read the kernel's drop count for the receiver's socket now (also done every second)."""
        if self.bound is not None:
            drops = proc_udp_drops_at(*self.bound[:2])
            if drops is not None and drops > self.counters["kernel_drops"]:
                self.counters["kernel_drops"] = drops

    def _poll_drops(self, loop: asyncio.AbstractEventLoop) -> None:
        self.refresh_drops()
        self._timer = loop.call_later(DROPS_POLL_S, self._poll_drops, loop)

    def describe(self) -> str:
        """Where it listens."""
        return f"snmp traps udp {self.bound}"

    def _emit(self, ev: Event) -> None:
        assert self._sink is not None
        self.counters["events"] += 1
        self._sink.feed((ev,))

    def _ref(self) -> str:
        self._n += 1
        return f"{self.name}:{self._n}"

    def _notification(self, note: Notification) -> None:
        attrs: dict[str, Any] = {"snmp_trap": note.name or "other", "trap_oid": note.trap_oid, "agent": note.agent,
                                 "version": note.version}
        device = self.devices_by_address.get(note.agent)
        if device is not None:
            attrs["device"] = device
        if note.uptime is not None:
            attrs["sys_uptime"] = note.uptime
        for key in ("if_index", "if_descr", "if_oper_status", "if_admin_status"):
            value = getattr(note, key)
            if value is not None:
                attrs[key] = value
        raw = "; ".join(f"{v.oid}={v.value}" for v in note.varbinds)
        self._emit(Event(self.clock().timestamp(), self.name, LOG, src=note.agent, sport=note.port,
                         host=device or note.agent, proto="snmp", attrs=attrs, raw=excerpt(raw), ref=self._ref()))

    def _bad_community(self, sender: str, port: int) -> None:
        attrs = {"snmp_trap": "badCommunity", "agent": sender, "receiver": self.hostport}
        self._emit(Event(self.clock().timestamp(), self.name, LOG, src=sender, sport=port, host=sender,
                         proto="snmp", outcome="failure", attrs=attrs, ref=self._ref()))


def snmp_trap_sources(app: App) -> list[Source]:
    """One receiver per [sources] snmp_traps entry, with the communities and users of [sources.snmp]."""
    hostports = app.config.sources.snmp_traps
    if not hostports:
        return []
    snmp = app.config.sources.snmp
    # DeviceDirectory reads credentials the way [devices] does (systemd credentials, owner-only files).
    secret = app.devices.secret
    communities = [secret(f"trap community {c.name}", c.community_credential, c.community_file)
                   for c in snmp.trap_communities]
    users = [TrapUser(user=u.user, auth_protocol=u.auth_protocol, priv_protocol=u.priv_protocol,
                      auth_key=secret(f"trap user {u.user}", u.auth_key_credential, u.auth_key_file),
                      priv_key=secret(f"trap user {u.user}", u.priv_key_credential, u.priv_key_file),
                      engine_id=engine_id)
             for u in snmp.trap_users for engine_id in u.senders]
    if not communities and not users:
        log.warning("[sources] snmp_traps is set but [sources.snmp] has no trap_communities or trap_users: "
                    "every notification will be dropped")
    by_address = {d.address: d.name for d in app.devices}
    return [SnmpTrapSource(hp, app.clock, communities=communities, users=users, devices_by_address=by_address)
            for hp in hostports]
