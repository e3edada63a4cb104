"""Password guessing: failed logins from logs and FTP replies, and bursts of short SSH connections."""

from __future__ import annotations

from watchstander.connectors.events import ACK, AUTH, NETWORK, SYN, Event

from ...config.detectors import BruteForceConfig
from .base import Detector, Distinct, Emit, WindowTable

USER_CAP = 256


class _Failures(Distinct):
    __slots__ = ("layers",)

    def __init__(self, start: float) -> None:
        super().__init__(start)
        # sshd and PAM both log each failed attempt; counting per layer and taking the
        # largest avoids counting one attempt twice.
        self.layers: dict[str, int] = {}

    def attempts(self) -> int:
        return max(self.layers.values(), default=0)


class BruteForceDetector(Detector):
    """Repeated failed authentication against one service from one source."""

    id = "bruteforce"
    kinds = (AUTH, NETWORK)
    techniques = ("T1110.001",)
    title = "Password guessing"
    confidence = 0.8
    playbook = "block-address-nftables"

    def __init__(self, config: BruteForceConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.failures: WindowTable[_Failures] = WindowTable(config.window_s, _Failures)
        self.connections: WindowTable[Distinct] = WindowTable(config.ssh_window_s, Distinct)
        self.ssh_ports = frozenset(config.ssh_ports)

    def feed(self, ev: Event) -> None:
        """Count failures (AUTH) and new SSH connections (NETWORK)."""
        if ev.kind == AUTH:
            self._auth(ev)
        elif ev.dport in self.ssh_ports and ev.proto == "tcp" and ev.flags & SYN and (
                not ev.flags & ACK or _is_flow(ev)):
            # A flow record (NetFlow, Zeek conn) ORs the client's SYN with its handshake ACK: one
            # record with SYN towards the port is one new connection, as the bare SYN is for packets.
            self._connection(ev)

    def _auth(self, ev: Event) -> None:
        service = ev.proto or "auth"
        key = (ev.src, service, ev.dst)
        if ev.outcome == "success":
            st = self.failures.states.get(key)
            if st is not None and st.finding is not None and ev.time - st.finding.last_seen <= self.config.window_s:
                f = st.finding
                f.severity = "critical"
                f.title = f"Successful login after password guessing: {ev.user or '?'} from {ev.src}"
                f.attributes["success_after_failures"] = True
                f.attributes["compromised_user"] = ev.user
                f.techniques = (*f.techniques, "T1078") if "T1078" not in f.techniques else f.techniques
                f.last_seen = ev.time
                f.add_evidence(ev.ref)
            return
        if ev.outcome != "failure" or ev.src is None:
            return
        st = self.failures.get(key, ev.time)
        layer = (ev.attrs or {}).get("layer", "log")
        st.layers[layer] = st.layers.get(layer, 0) + 1
        if ev.user:
            st.add(ev.user, USER_CAP)
        attempts = st.attempts()
        if st.finding is None:
            if attempts < self.config.failures:
                return
            st.open(self, f"{service.upper()} password guessing against {ev.dst or '?'} from {ev.src}", "medium",
                    {"attacker": ev.src, "victim": ev.dst or "?", "service": service}, ev, evidence="failed logins")
        assert st.finding is not None
        f = st.finding
        f.count = attempts
        f.last_seen = ev.time
        f.counts["failed_logins"] = attempts
        f.counts["distinct_users"] = len(st.items)
        f.add_evidence(ev.ref)
        if len(st.items) >= 5:
            f.attributes["users_sample"] = sorted(st.items)[:10]

    def _connection(self, ev: Event) -> None:
        st = self.connections.get((ev.src, ev.dst, ev.dport), ev.time)
        # A retransmitted SYN reuses its source port, so distinct source ports are connections.
        st.add(ev.sport, 65536)
        if st.finding is None and len(st.items) >= self.config.ssh_connections:
            st.open(self, f"SSH password guessing against {ev.dst} from {ev.src}", "medium",
                    {"attacker": ev.src or "?", "victim": ev.dst or "?", "service": "ssh"}, ev,
                    evidence="repeated short SSH connections")
        if st.finding is not None:
            st.update(ev, "connections")


def _is_flow(ev: Event) -> bool:
    attrs = ev.attrs
    return attrs is not None and attrs.get("flow") is True
