"""Port scans by every technique: many ports (or IP protocols) of one host, one port of many hosts,
and the same slowly, from packets and flow records alike.

Rules (docs/detection.md, "Scans and sweeps"):
- vertical: one source probes >= `vertical_ports` ports of one host by one TCP or SCTP technique, or
  >= `udp_ports` UDP ports that did not answer, or >= `protocols` uncommon IP protocols, in `window_s`;
- horizontal: one source probes one port of >= `horizontal_hosts` hosts (UDP: hosts that did not answer);
- low-and-slow: >= `slow_ports` unanswered ports of one host within `slow_window_s`, spread over more
  than `window_s` (faster is the vertical rule's); memory bounded by `slow_max_sources` pairs of at
  most `slow_ports` ports each.
The site's own scanners (`scanners`) are counted in `suppressed`, never reported.
"""

from __future__ import annotations

import logging
from collections import Counter
from itertools import islice
from typing import Any

from watchstander.connectors.events import ACK, NETWORK, PSH, SYN, Event

from ...config.detectors import PortScanConfig
from ...models import Finding
from .base import Detector, Emit, WindowTable
from .scan_probe import (
    AMBIGUOUS,
    COMMON_PROTOCOLS,
    FLAG_MASK,
    FLOW_BARE_BYTES,
    FLOW_PROBE_PACKETS,
    IP_PROTOCOL,
    NAMES,
    SCTP_INIT,
    TCP_ACK,
    TCP_PROBE_FLAGS,
    TCP_SYN,
    UDP,
    Cover,
    Networks,
    attack_ids,
    flow_small,
    probe,
    unreachable,
)

log = logging.getLogger(__name__)

CAP = 65536
DEAD = 0     # a port that answered, or that a real connection uses: no longer counted
CLOSED = -1  # a UDP or SCTP port an ICMP unreachable said is closed: counted
TECHNIQUE_ORDER = tuple(NAMES)
TECHNIQUE_BITS = {t: 1 << i for i, t in enumerate(TECHNIQUE_ORDER)}
HORIZONTAL = frozenset({TCP_SYN, UDP, SCTP_INIT, "tcp-fin", "tcp-null", "tcp-xmas"})


def vertical_title(technique: str, src: str | None, dst: str | None, count: int) -> str:
    """"UDP port scan of 10.0.0.5 from 10.0.0.9 (212 ports)", "IP protocol scan of … (57 protocols)"."""
    if technique == IP_PROTOCOL:
        return f"IP protocol scan of {dst} from {src} ({count} protocols)"
    return f"{NAMES[technique]} port scan of {dst} from {src} ({count} ports)"


class Probes:
    """One source's probes by one technique of one host's ports (or one port's hosts) in the window."""

    __slots__ = ("cover", "distinct", "finding", "live", "n", "ports", "start", "suppressed")

    def __init__(self, start: float) -> None:
        self.cover: Cover | None = None  # horizontal only: the network the probed hosts span
        self.start = start
        self.n = 0
        self.distinct = 0  # ports (or hosts) probed, answered or not
        self.live = 0  # of them, those still counted as evidence
        self.ports: dict[Any, int] = {}  # port (or host) -> packets seen, DEAD or CLOSED
        self.finding: Finding | None = None
        self.suppressed = False

    def add(self, item: Any, status: int = 1) -> None:
        """Count one probe of `item`; `status` CLOSED when an unreachable confirmed it."""
        self.n += 1
        old = self.ports.get(item)
        if old is None:
            if len(self.ports) < CAP:
                self.ports[item] = status
                self.live += 1
                self.distinct += 1
        elif old != DEAD:
            self.ports[item] = CLOSED if status == CLOSED or old == CLOSED else old + 1

    def kill(self, item: Any, remember: bool = False) -> None:
        """`item` answered or belongs to a real connection: stop counting it (and, with `remember`,
        never start if it was not probed yet)."""
        old = self.ports.get(item)
        if old is not None and old != DEAD:
            self.ports[item] = DEAD
            self.live -= 1
        elif old is None and remember and len(self.ports) < CAP:
            self.ports[item] = DEAD


class AckPair:
    """One source's bare-ACK and FIN+ACK probes of one host, judged together."""

    __slots__ = ("ack", "maimon")

    def __init__(self, start: float) -> None:
        self.ack = Probes(start)
        self.maimon = Probes(start)


class SlowProbes:
    """A pair's unanswered probes over the slow window: at most `slow_ports` (time, port) entries."""

    __slots__ = ("distinct", "finding", "ports", "start", "suppressed", "techniques", "times")

    def __init__(self, start: float) -> None:
        self.start = start
        # Lists, not arrays: most pairs are created for one SYN and dropped at its SYN-ACK, and a
        # list is several times cheaper to make; a full pair holds slow_ports of each either way.
        self.times: list[float] = []
        self.ports: list[int] = []
        self.techniques = 0  # bit i set: technique TECHNIQUE_ORDER[i] was seen
        self.distinct = 0
        self.finding: Finding | None = None
        self.suppressed = False

    def add(self, port: int, ts: float, window: float, cap: int) -> None:
        """Remember `port` at `ts`, forgetting entries older than the window and beyond the cap."""
        times, ports = self.times, self.ports
        horizon = ts - window
        while times and times[0] < horizon:
            times.pop(0)
            ports.pop(0)
        if port in ports:
            i = ports.index(port)
            del times[i], ports[i]
        else:
            self.distinct += 1
        times.append(ts)
        ports.append(port)
        if len(ports) > cap:
            times.pop(0)
            ports.pop(0)

    def kill(self, port: int) -> None:
        """The port answered: it is a service, not a probe."""
        if port in self.ports:
            i = self.ports.index(port)
            del self.times[i], self.ports[i]


class PortScanDetector(Detector):
    """Probes counted per source and target, per technique, from packets or flow records."""

    id = "portscan"
    kinds = (NETWORK,)
    techniques = ("T1046",)
    title = "Port scan"
    confidence = 0.85
    playbook = "block-address-nftables"

    def __init__(self, config: PortScanConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.vertical: WindowTable[Probes] = WindowTable(config.window_s, Probes)
        self.horizontal: WindowTable[Probes] = WindowTable(config.window_s, Probes)
        self.ambiguous: WindowTable[AckPair] = WindowTable(config.window_s, AckPair)  # ACK and Maimon probes
        self.slow: WindowTable[SlowProbes] = WindowTable(config.slow_window_s, SlowProbes,
                                                         max_keys=config.slow_max_sources)
        self.scanners = Networks(config.scanners)
        self.suppressed: Counter[str] = Counter()  # allow-listed scanner -> scans seen and not reported
        self.thresholds = {UDP: config.udp_ports, IP_PROTOCOL: config.protocols}

    def feed(self, ev: Event) -> None:
        """Judge one packet or flow record as a probe, an answer, or neither."""
        proto = ev.proto
        if proto == "tcp":
            # TCP is most of any network's traffic: decide on the flags before anything else.
            flags = ev.flags
            if flags & SYN:
                if flags & ACK:
                    self._syn_ack(ev)
                    return
                technique = TCP_SYN
            else:
                found = TCP_PROBE_FLAGS.get(flags & FLAG_MASK)
                if found is None:
                    if flags & PSH and self.ambiguous.states:
                        self._data(ev)
                    return
                attrs = ev.attrs
                if attrs is not None and attrs.get("flow") and not flow_small(attrs, FLOW_BARE_BYTES):
                    return
                if found in AMBIGUOUS:
                    self._ambiguous(ev, found)
                    return
                technique = found
        else:
            found = probe(ev)
            if proto == "udp":
                self._udp_answer(ev)
            if found is None:
                if proto == "icmp" or proto == "icmp6":
                    self._unreachable(ev)
                elif proto is not None and proto not in COMMON_PROTOCOLS and proto.isdigit():
                    self._vertical(ev, IP_PROTOCOL, ev.src, ev.dst, proto)
                return
            technique = found
        src, dst, port = ev.src, ev.dst, ev.dport
        if type(port) is not int or not 0 <= port <= 0xFFFF:
            return
        st = self._vertical(ev, technique, src, dst, port)
        if technique in HORIZONTAL:
            self._horizontal(ev, technique, src, dst, port)
        # A pair is followed for a slow scan from its second unanswered port on: nearly every pair
        # is one connection attempt, answered at once, and not worth a slow-table entry.
        if st.live >= 2 or (src, dst) in self.slow.states:
            self._slow(ev, technique, src, dst, port, st)

    # -- vertical -------------------------------------------------------------------------------

    def _vertical(self, ev: Event, technique: str, src: str | None, dst: str | None, item: Any,
                  status: int = 1) -> Probes:
        st = self.vertical.get((src, dst, technique), ev.time)
        st.add(item, status)
        self._check_vertical(st, ev, technique, src, dst)
        return st

    def _check_vertical(self, st: Probes, ev: Event, technique: str, src: str | None, dst: str | None) -> None:
        if st.suppressed:
            return
        what = "protocols" if technique == IP_PROTOCOL else "ports"
        f = st.finding
        if f is None:
            if st.live < self.thresholds.get(technique, self.config.vertical_ports):
                return
            slow = self.slow.states.get((src, dst))
            if slow is not None and slow.finding is not None:
                return  # already reported as a low-and-slow scan, which goes on counting it
            attacker = src or "?"
            if attacker in self.scanners:
                self._suppress(st, attacker, technique)
                return
            f = self.new_finding(vertical_title(technique, src, dst, st.distinct), "medium", {"attacker": attacker, "victim": dst or "?"}, ev,
                                 techniques=attack_ids(attacker), first_seen=st.start, shape="vertical",
                                 technique=technique)
            st.finding = f
        elif f.counts.get(f"distinct_{what}") != st.distinct:
            f.title = vertical_title(technique, src, dst, st.distinct)
        f.count = st.n
        f.last_seen = ev.time
        f.counts[f"distinct_{what}"] = st.distinct
        f.counts[f"unanswered_{what}"] = st.live
        f.add_evidence(ev.ref)

    def _ambiguous(self, ev: Event, technique: str) -> None:
        src, dst, port, sport = ev.src, ev.dst, ev.dport, ev.sport
        if type(port) is not int or not 0 <= port <= 0xFFFF:
            return
        states = self.vertical.states
        syn = states.get((src, dst, TCP_SYN))
        if syn is not None and port in syn.ports:
            return  # the source's own connection to that port (its handshake ACK, its close)
        client = states.get((dst, src, TCP_SYN))
        if client is not None and sport in client.ports:
            return  # the target connected to this source's port: the server's side of a connection
        pair = self.ambiguous.get((src, dst), ev.time)
        st, other = (pair.ack, pair.maimon) if technique == TCP_ACK else (pair.maimon, pair.ack)
        if port in other.ports:
            other.kill(port)  # ACK and FIN+ACK on one port: a connection closing
            return
        if st.ports.get(port, 1) > FLOW_PROBE_PACKETS:
            st.kill(port)
        else:
            st.add(port)
        self._check_vertical(st, ev, technique, src, dst)

    def _data(self, ev: Event) -> None:
        pair = self.ambiguous.states.get((ev.src, ev.dst))
        if pair is not None:
            pair.ack.kill(ev.dport, remember=True)  # data on the port: a real connection
            pair.maimon.kill(ev.dport, remember=True)

    def _syn_ack(self, ev: Event) -> None:
        # The port accepted: a service in use, no evidence of a scan (monitoring, crawlers).
        states = self.vertical.states
        if states:
            syn = states.get((ev.dst, ev.src, TCP_SYN))
            if syn is not None:
                syn.kill(ev.sport)
        if self.horizontal.states:
            h = self.horizontal.states.get((ev.dst, TCP_SYN, ev.sport))
            if h is not None:
                h.kill(ev.src)
        self._slow_answer(ev)

    # -- UDP answers and ICMP unreachables --------------------------------------------------------

    def _udp_answer(self, ev: Event) -> None:
        # A datagram back from the probed port: the port is open, so it is no evidence of a scan.
        st = self.vertical.states.get((ev.dst, ev.src, UDP))
        if st is not None:
            st.kill(ev.sport)
        h = self.horizontal.states.get((ev.dst, UDP, ev.sport))
        if h is not None:
            h.kill(ev.src)
        self._slow_answer(ev)

    def _slow_answer(self, ev: Event) -> None:
        # The probed port answered: a service, not a slow scan. A pair left with nothing unanswered
        # is forgotten at once, so ordinary clients do not crowd scanners out of the bounded table.
        if not self.slow.states:
            return
        key = (ev.dst, ev.src)
        slow = self.slow.states.get(key)
        if slow is not None and type(ev.sport) is int:
            slow.kill(ev.sport)
            if not slow.ports and slow.finding is None and not slow.suppressed:
                del self.slow.states[key]
                del self.slow.seen[key]

    def _unreachable(self, ev: Event) -> None:
        quoted = unreachable(ev)
        if quoted is None:
            return
        prober, target, technique, port = quoted
        if technique == IP_PROTOCOL:
            if str(port) not in COMMON_PROTOCOLS:
                self._vertical(ev, IP_PROTOCOL, prober, target, str(port))
        elif technique is not None:
            self._vertical(ev, technique, prober, target, port, CLOSED)

    # -- horizontal and slow ----------------------------------------------------------------------

    def _horizontal(self, ev: Event, technique: str, src: str | None, dst: str | None, port: int | None) -> None:
        h = self.horizontal.get((src, technique, port), ev.time)
        live = h.live
        h.add(dst)
        if h.cover is not None and h.live != live:
            h.cover.add(dst)  # kept from the threshold on: before it, the hosts alone are enough
        if h.suppressed:
            return
        f = h.finding
        if f is None:
            if h.live < self.config.horizontal_hosts:
                return
            attacker = src or "?"
            if attacker in self.scanners:
                self._suppress(h, attacker, technique)
                return
            h.cover = Cover(h.ports)
            network = str(h.cover)
            title = f"Horizontal {NAMES[technique]} scan of port {port} across {network} from {src} ({h.distinct} hosts)"
            f = self.new_finding(title, "medium", {"attacker": attacker, "victim_port": str(port)}, ev,
                                 techniques=attack_ids(attacker), first_seen=h.start, shape="horizontal",
                                 technique=technique, targets=network)
            h.finding = f
        elif f.counts.get("distinct_hosts") != h.distinct:
            network = str(h.cover)
            f.attributes["targets"] = network
            f.title = f"Horizontal {NAMES[technique]} scan of port {port} across {network} from {src} ({h.distinct} hosts)"
        f.count = h.n
        f.last_seen = ev.time
        f.counts["distinct_hosts"] = h.distinct
        f.counts["unanswered_hosts"] = h.live
        f.add_evidence(ev.ref)

    def _slow(self, ev: Event, technique: str, src: str | None, dst: str | None, port: int, fast: Probes) -> None:
        cfg = self.config
        new = (src, dst) not in self.slow.states
        s = self.slow.get((src, dst), ev.time)
        if new:  # start from the unanswered ports the fast table already holds (usually one)
            seeds = (p for p, status in fast.ports.items() if status != DEAD and p != port and type(p) is int)
            for p in islice(seeds, cfg.slow_ports):
                s.add(p, fast.start, cfg.slow_window_s, cfg.slow_ports)
        s.add(port, ev.time, cfg.slow_window_s, cfg.slow_ports)
        s.techniques |= TECHNIQUE_BITS[technique]
        if s.suppressed:
            return
        f = s.finding
        if f is None:
            span = ev.time - s.times[0]
            if len(s.ports) < cfg.slow_ports or span <= cfg.window_s:
                return
            if fast.finding is not None:
                return  # the vertical rule already reports this pair
            attacker = src or "?"
            if attacker in self.scanners:
                self._suppress(s, attacker, "low-and-slow")
                return
            f = s.finding = self.new_finding("", "medium", {"attacker": attacker, "victim": dst or "?"}, ev,
                                             techniques=attack_ids(attacker), first_seen=s.times[0],
                                             shape="low-and-slow", technique=technique)
        distinct = max(s.distinct, len(s.ports))
        if f.counts.get("distinct_ports") != distinct:
            names = "/".join(NAMES[t] for i, t in enumerate(TECHNIQUE_ORDER) if s.techniques >> i & 1)
            f.title = (f"Low-and-slow {names} port scan of {dst} from {src} "
                       f"({distinct} ports over {(ev.time - f.first_seen) / 3600:.1f} h)")
        f.count += 1
        f.last_seen = ev.time
        f.counts["distinct_ports"] = distinct
        f.add_evidence(ev.ref)

    def _suppress(self, st: Probes | SlowProbes, scanner: str, technique: str) -> None:
        st.suppressed = True
        self.suppressed[scanner] += 1
        log.info("allow-listed scanner %s: %s scan not reported (%d so far)", scanner, technique,
                 self.suppressed[scanner])
