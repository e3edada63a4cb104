"""SNMP abuse seen on the wire: community or user guessing, sweeps, walks and SETs by managers that
are not the site's.

Reads `Event.attrs["snmp"]` (see connectors/snmp_packets.py) on udp/161; sweeps need no decoding,
so flow records and undecoded packets count towards them too.

- Guessing (T1110.001): from one source against one agent, at least `guess_names` distinct
  communities or v3 user names that failed -- never answered (v1/v2c agents drop a wrong community
  silently), answered with authorizationError, or answered by a usmStats unknownUserNames /
  wrongDigests report.
- Sweep (T1046): one source sending SNMP requests to `sweep_hosts` agents within the window. A
  configured manager is never a sweeper; with no managers configured, a sweep is one that most
  agents left unanswered (a manager polling its devices gets answers).
- SET (T1602.001 is the nearest ATT&CK has: no enterprise technique names SNMP writes): from a
  source not in `managers`; with none configured, a SET the agent refused (noAccess, notWritable,
  noSuchName in v1 ...), since a site's own manager writes with the right community. Whether the
  agent accepted each SET is counted.
- Walk (T1602.001): `walk_requests` getnext/getbulk to one agent by a source not in `managers`;
  only when managers are configured (otherwise every poller would be reported).
"""

from __future__ import annotations

from typing import Any

from watchstander.connectors.events import NETWORK, Event

from ...config.detectors import SnmpAbuseConfig
from ...models import Finding
from .addresses import NetworkSet
from .base import Detector, Distinct, Emit, WindowTable
from .sweep import covering_network

SNMP_PORT = 161
NAME_CAP = 256
HOST_CAP = 65_536
AUTH_FAILURES = frozenset({"unknownUserNames", "wrongDigests"})
WALK_PDUS = frozenset({"getnext", "getbulk"})
REQUEST_PDUS = frozenset({"get", "getnext", "getbulk", "set"})
SET_IDS_CAP = 64


class _Session:
    """One (source, agent) pair within the window: names tried and answered, walk and SET counts."""

    __slots__ = (
        "accepted",
        "failed",
        "finding",
        "set_finding",
        "set_ids",
        "sets",
        "sets_accepted",
        "sets_refused",
        "start",
        "tried",
        "walk_finding",
        "walks",
    )

    def __init__(self, start: float) -> None:
        self.start = start
        self.tried: set[str] = set()
        self.accepted: set[str] = set()
        self.failed: set[str] = set()
        self.walks = 0
        self.sets = 0
        self.sets_accepted = 0
        self.sets_refused = 0
        self.set_ids: set[int] = set()  # request-ids of SETs awaiting their response
        self.finding: Finding | None = None
        self.walk_finding: Finding | None = None
        self.set_finding: Finding | None = None

    def unanswered(self) -> int:
        """Names that failed, or that were tried and never accepted."""
        return len(self.failed | (self.tried - self.accepted))


class _Sweep(Distinct):
    __slots__ = ("answered",)

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.answered: set[str] = set()


def _snmp(attrs: Any) -> dict[str, Any] | None:
    if not isinstance(attrs, dict):
        return None
    snmp = attrs.get("snmp")
    return snmp if isinstance(snmp, dict) else None


def _field(snmp: dict[str, Any] | None, key: str) -> str | None:
    """A text field of the decoded header; anything else (hostile or absent) is None."""
    value = snmp.get(key) if snmp is not None else None
    return value if isinstance(value, str) else None


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _network(hosts: set[str]) -> str:
    """The smallest network holding every host, or "?" when one is not an address."""
    try:
        return covering_network(hosts)
    except ValueError:
        return "?"


def _name(snmp: dict[str, Any]) -> str | None:
    for field, prefix in (("community", "community:"), ("user", "user:")):
        value = snmp.get(field)
        if isinstance(value, str) and (value or field == "community"):  # v3 discovery has no user
            return prefix + value[:64]
    return None


class SnmpAbuseDetector(Detector):
    """Community guessing, sweeps, walks and SETs on udp/161."""

    id = "snmp_abuse"
    kinds = (NETWORK,)
    techniques = ("T1110.001", "T1046", "T1602.001")
    title = "SNMP abuse"
    confidence = 0.7
    playbook = "block-address-nftables"

    def __init__(self, config: SnmpAbuseConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.managers = NetworkSet(config.managers)
        self.sessions: WindowTable[_Session] = WindowTable(config.window_s, _Session, max_keys=100_000)
        self.sweeps: WindowTable[_Sweep] = WindowTable(config.window_s, _Sweep, max_keys=100_000)

    def feed(self, ev: Event) -> None:
        """Score one SNMP request or response (flows and undecoded packets feed sweeps only)."""
        if ev.proto != "udp" or not isinstance(ev.src, str) or not isinstance(ev.dst, str):
            return
        if ev.dport == SNMP_PORT:
            self._request(ev, _snmp(ev.attrs))
        elif ev.sport == SNMP_PORT:
            self._response(ev, _snmp(ev.attrs))

    def _request(self, ev: Event, snmp: dict[str, Any] | None) -> None:
        src, agent = ev.src, ev.dst
        assert src is not None and agent is not None
        pdu = _field(snmp, "pdu")
        if snmp is not None and pdu not in REQUEST_PDUS:
            return
        manager = src in self.managers
        if not manager:
            self._sweep(ev, src, agent)
            attrs = ev.attrs
            if isinstance(attrs, dict) and attrs.get("flow") is True and _positive(attrs.get("resp_bytes")):
                self._answered(src, agent)  # a Zeek conn record carries its answer
        if snmp is None:
            return
        st = self.sessions.get((src, agent), ev.time)
        name = _name(snmp)
        if name is not None and len(st.tried) < NAME_CAP:
            st.tried.add(name)
        if pdu == "set" and not manager:
            st.sets += 1
            rid = snmp.get("request_id")
            if isinstance(rid, int) and len(st.set_ids) < SET_IDS_CAP:
                st.set_ids.add(rid)
            if self.config.managers or st.set_finding is not None:
                self._set(ev, st, src, agent)
        elif pdu in WALK_PDUS and not manager and self.config.managers:
            st.walks += 1
            self._walk(ev, st, src, agent)
        self._guessing(ev, st, src, agent)

    def _response(self, ev: Event, snmp: dict[str, Any] | None) -> None:
        agent, src = ev.src, ev.dst
        assert src is not None and agent is not None
        self._answered(src, agent)
        if snmp is None:
            return
        st = self.sessions.states.get((src, agent))
        if st is None:
            return
        name = _name(snmp)
        error, pdu = _field(snmp, "error"), _field(snmp, "pdu")
        failure = error == "authorizationError" or _field(snmp, "usm_report") in AUTH_FAILURES
        if pdu == "report" and not failure:
            return  # engine discovery: neither acceptance nor failure
        if name is not None:
            if failure:
                if len(st.failed) < NAME_CAP:
                    st.failed.add(name)
            elif len(st.accepted) < NAME_CAP:
                st.accepted.add(name)
        rid = snmp.get("request_id")
        if pdu == "response" and isinstance(rid, int) and rid in st.set_ids:
            st.set_ids.discard(rid)
            if error == "noError":
                st.sets_accepted += 1
            else:
                st.sets_refused += 1
            if st.set_finding is not None or st.sets_refused:
                self._set(ev, st, src, agent, error)
        self._guessing(ev, st, src, agent)

    def _answered(self, src: str, agent: str) -> None:
        sweep = self.sweeps.states.get(src)
        if sweep is not None and agent in sweep.items and len(sweep.answered) < HOST_CAP:
            sweep.answered.add(agent)

    def _guessing(self, ev: Event, st: _Session, src: str, agent: str) -> None:
        failed = st.unanswered()
        if st.finding is None:
            if failed < self.config.guess_names:
                return
            st.finding = self.new_finding(
                f"SNMP community guessing against {agent} from {src} ({failed} communities or users failed)",
                "medium", {"attacker": src, "victim": agent, "service": "snmp"}, ev,
                techniques=("T1110.001",), first_seen=st.start)
        f = st.finding
        f.count = failed
        f.last_seen = max(f.last_seen, ev.time)
        f.counts["failed_names"] = failed
        f.counts["names_tried"] = len(st.tried)
        f.title = f"SNMP community guessing against {agent} from {src} ({failed} communities or users failed)"
        f.add_evidence(ev.ref)

    def _set(self, ev: Event, st: _Session, src: str, agent: str, error: str | None = None) -> None:
        """Open or update the SET finding: any SET when managers are configured, else a refused one."""
        if st.set_finding is None:
            if self.config.managers:
                title = f"SNMP SET on {agent} from {src}, which is not a configured manager"
            else:
                title = f"SNMP SET refused by {agent}: {src} tried to write without write access ({error})"
            st.set_finding = self.new_finding(
                title, "medium", {"attacker": src, "victim": agent, "service": "snmp-set"}, ev,
                techniques=("T1602.001",), first_seen=st.start, accepted=False)
        f = st.set_finding
        f.count = st.sets
        f.counts["sets"] = st.sets
        f.counts["sets_accepted"] = st.sets_accepted
        f.counts["sets_refused"] = st.sets_refused
        if st.sets_accepted:
            f.severity = "high"
            f.attributes["accepted"] = True
        f.last_seen = max(f.last_seen, ev.time)
        f.add_evidence(ev.ref)

    def _walk(self, ev: Event, st: _Session, src: str, agent: str) -> None:
        if st.walk_finding is None:
            if st.walks < self.config.walk_requests:
                return
            st.walk_finding = self.new_finding(
                f"SNMP walk of {agent} by {src}, which is not a configured manager", "medium",
                {"attacker": src, "victim": agent, "service": "snmp-walk"}, ev, techniques=("T1602.001",),
                first_seen=st.start)
        f = st.walk_finding
        f.count = st.walks
        f.counts["walk_requests"] = st.walks
        f.last_seen = max(f.last_seen, ev.time)
        f.add_evidence(ev.ref)

    def _sweep(self, ev: Event, src: str, agent: str) -> None:
        sw = self.sweeps.get(src, ev.time)
        sw.add(agent, HOST_CAP)
        hosts = len(sw.items)
        if sw.finding is None:
            if hosts < self.config.sweep_hosts:
                return
            if not self.config.managers and len(sw.answered) > self.config.sweep_max_answered * hosts:
                return
            sw.open(self, f"SNMP sweep of {hosts} hosts from {src}", "medium",
                    {"attacker": src, "victim": _network(sw.items)}, ev, techniques=("T1046",))
        sw.update(ev, "distinct_hosts")
        f = sw.finding
        assert f is not None
        f.counts["answered"] = len(sw.answered)
        if hosts % 16 == 0:
            f.title = f"SNMP sweep of {hosts} hosts from {src}"
