"""ARP cache poisoning: one IP claimed by two MACs, or a MAC that answers for an IP it does not own."""

from __future__ import annotations

from dataclasses import dataclass, field

from watchstander.connectors.events import ARP, Event

from ...config.detectors import ArpSpoofConfig
from ...models import Finding
from .base import Detector, Emit

BROADCAST = "ff:ff:ff:ff:ff:ff"
ZERO_IP = "0.0.0.0"
TABLE_CAP = 100_000


@dataclass(slots=True)
class _Claim:
    time: float
    broadcast_request: bool = False  # claimed while resolving someone else: how hosts use their own IP


@dataclass(slots=True)
class _MacState:
    claims: dict[str, _Claim] = field(default_factory=dict)
    unsolicited: dict[str, list[str]] = field(default_factory=dict)  # claimed ip -> victims
    unsolicited_count: int = 0
    finding: Finding | None = None


class ArpSpoofDetector(Detector):
    """Tracks ARP sender bindings and requests to tell poisoning from ordinary and gratuitous ARP."""

    id = "arpspoof"
    kinds = (ARP,)
    techniques = ("T1557.002",)
    title = "ARP cache poisoning"
    confidence = 0.75
    playbook = "capture-incident-traffic"

    def __init__(self, config: ArpSpoofConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.ip_macs: dict[str, dict[str, float]] = {}
        self.macs: dict[str, _MacState] = {}
        self.requests: dict[tuple[str, str], float] = {}  # (asker ip, asked-for ip) -> time

    def feed(self, ev: Event) -> None:
        """Learn from one ARP packet and judge it."""
        attrs = ev.attrs or {}
        mac, ip, target = attrs.get("hwsrc"), ev.src, ev.dst
        if not mac or not isinstance(mac, str) or not ip or ip == ZERO_IP or not target:
            return  # the decoder writes MACs as text; anything else is not an ARP record we can judge
        now, window = ev.time, self.config.window_s
        if len(self.requests) > TABLE_CAP or len(self.macs) > TABLE_CAP or len(self.ip_macs) > TABLE_CAP:
            self._forget(now)
        op = attrs.get("op")
        broadcast = attrs.get("eth_dst") in (None, BROADCAST)
        gratuitous = ip == target
        state = self.macs.setdefault(mac, _MacState())
        if op == 1:
            if not gratuitous:
                self.requests[(ip, target)] = now
        elif op == 2 and not gratuitous and not broadcast:
            # A request is answered once; a second reply to it, or one nobody asked for, is unsolicited.
            asked = self.requests.pop((target, ip), None)
            if asked is None or now - asked > window:
                victims = state.unsolicited.setdefault(ip, [])
                if target not in victims and len(victims) < 64:
                    victims.append(target)
                state.unsolicited_count += 1
        claim = state.claims.get(ip)
        if claim is None:
            claim = state.claims[ip] = _Claim(now)
        claim.time = now
        if op == 1 and broadcast and not gratuitous:
            claim.broadcast_request = True
        bindings = self.ip_macs.setdefault(ip, {})
        bindings[mac] = now
        conflicting = [m for m, t in bindings.items() if m != mac and now - t <= window]
        self._judge(mac, state, ev, conflicting)

    def _judge(self, mac: str, state: _MacState, ev: Event, conflicting: list[str]) -> None:
        live = {ip: c for ip, c in state.claims.items() if ev.time - c.time <= self.config.window_s}
        reason = None
        if state.unsolicited and len(live) >= 2:
            reason = "a MAC that claims several addresses sent unsolicited ARP replies"
        elif state.unsolicited_count >= self.config.unsolicited_replies:
            reason = "repeated unsolicited ARP replies"
        elif conflicting and state.unsolicited:
            reason = f"address {ev.src} is also bound to {', '.join(conflicting)}"
        if reason is None and state.finding is None:
            return
        assert ev.src is not None  # feed() judges only ARP packets that name a sender address
        impersonated = sorted(state.unsolicited) or [ev.src]
        own = sorted(ip for ip, c in live.items() if c.broadcast_request and ip not in state.unsolicited)
        victims = sorted({v for vs in state.unsolicited.values() for v in vs})
        entities = {"attacker_mac": mac, "impersonated": ",".join(impersonated)}
        if own:
            entities["attacker"] = own[0]
        if victims:
            entities["victim"] = ",".join(victims)
        f = state.finding
        if f is None:
            f = state.finding = self.new_finding(
                f"ARP cache poisoning: {mac} claims {', '.join(impersonated)}", "high", entities, ev, reason=reason)
        f.entities.update(entities)
        f.count += 1
        f.last_seen = ev.time
        f.counts["unsolicited_replies"] = state.unsolicited_count
        f.counts["claimed_addresses"] = len(live)
        if conflicting:
            f.attributes["conflicting_macs"] = conflicting
        f.add_evidence(ev.ref)

    def _forget(self, now: float) -> None:
        horizon = now - self.config.window_s
        self.requests = {k: t for k, t in self.requests.items() if t >= horizon}
        self.macs = {m: s for m, s in self.macs.items()
                     if s.finding is not None or any(c.time >= horizon for c in s.claims.values())}
        self.ip_macs = {ip: b for ip, b in self.ip_macs.items() if max(b.values()) >= horizon}
