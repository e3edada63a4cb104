"""Lateral movement over admin protocols: an internal host that starts using RDP, SMB, SSH or WinRM
towards other internal hosts, when it never used that service during learning or since.

Learning lasts `learning_s` of *observed* time: the time between consecutive network events, each
silence counting at most `learning_gap_s`, so that a sensor that was stopped, or a capture stitched
from several years, does not pass for a week of watching. Nothing is reported while learning. The
learned (host, service) pairs and the learning progress live in a `LateralMemory`: in memory by
default, and in the store when the application attaches `agent.store.lateral.LateralStore` (see
`attach_memory`), so that a restart keeps them. At most `max_pairs` pairs are held in memory;
beyond that, new pairs are still saved but no longer remembered here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Protocol

from watchstander.connectors.events import ACK, NETWORK, SYN, Event

from ...config.detectors import LateralConfig
from .addresses import NetworkSet
from .base import Detector, Distinct, Emit, WindowTable

# port -> (service, ATT&CK technique)
ADMIN_PORTS: dict[int, tuple[str, str]] = {
    3389: ("rdp", "T1021.001"),
    445: ("smb", "T1021.002"),
    139: ("smb", "T1021.002"),
    22: ("ssh", "T1021.004"),
    5985: ("winrm", "T1021.006"),
    5986: ("winrm", "T1021.006"),
}
TARGET_CAP = 4096
SHOWN_TARGETS = 50  # hosts named in a finding's `targets` attribute; the count goes on beyond
_NUMBER = (float, int)  # a tuple: `float | int` would build a union object on every call
SAVE_EVERY_S = 3600.0  # observed learning time between saves of the progress (a crash loses at most this)
MEMORY_RETRY_S = 30.0  # wall-clock pause after a memory (the store) failed a save: one blocked attempt per pause

log = logging.getLogger(__name__)


class LateralMemory(Protocol):
    """Where learned pairs and the start of learning persist."""

    def load(self) -> tuple[float, Iterable[tuple[str, str, float]]]:
        """(observed learning seconds so far, every learned (src, service, first_seen))."""
        ...

    def save_progress(self, observed_s: float) -> None:
        """Record how much learning time has been observed."""
        ...

    def save_pair(self, src: str, service: str, first_seen: float) -> None:
        """Remember a (src, service) pair."""
        ...


class InMemory:
    """A memory that lasts as long as the process (replays, tests, no store)."""

    def __init__(self) -> None:
        self.observed_s = 0.0
        self.pairs: dict[tuple[str, str], float] = {}

    def load(self) -> tuple[float, list[tuple[str, str, float]]]:
        """Everything saved so far."""
        return self.observed_s, [(s, v, t) for (s, v), t in self.pairs.items()]

    def save_progress(self, observed_s: float) -> None:
        """Record the learning time observed so far."""
        self.observed_s = observed_s

    def save_pair(self, src: str, service: str, first_seen: float) -> None:
        """Remember a pair (the first time wins)."""
        self.pairs.setdefault((src, service), first_seen)


class LateralMovementDetector(Detector):
    """First use of an admin service by an internal host towards internal hosts, after learning."""

    id = "lateral"
    kinds = (NETWORK,)
    techniques = ("T1021.001", "T1021.002", "T1021.004", "T1021.006")
    title = "Lateral movement"
    confidence = 0.5
    playbook = "notify-webhook"

    def __init__(self, config: LateralConfig, emit: Emit, memory: LateralMemory | None = None) -> None:
        super().__init__(config, emit)
        self.internal = NetworkSet(config.internal_networks)
        self.admins = NetworkSet(config.admin_hosts)
        self.new: WindowTable[Distinct] = WindowTable(config.window_s, Distinct, max_keys=65_536)
        self.attach_memory(memory or InMemory())

    def attach_memory(self, memory: LateralMemory) -> None:
        """Use `memory` from now on, loading what it learned (the application attaches the store).

        Loaded first: a memory that cannot be read raises and the detector keeps the one it had. What
        was learned before (in memory while the store was away) is kept and saved to the new memory.
        """
        observed, pairs = memory.load()
        before: dict[tuple[str, str], float] = dict(getattr(self, "_learned_here", {}))
        self.memory = memory
        self.observed = max(observed, getattr(self, "observed", 0.0))
        self.saved = observed
        self.last_time: float | None = getattr(self, "last_time", None)
        self.known: set[tuple[str, str]] = set()
        # Saves not yet taken by the memory, retried (at most max_pairs of them) after MEMORY_RETRY_S.
        self._unsaved: dict[tuple[str, str], float] = {}
        self._learned_here: dict[tuple[str, str], float] = {}
        self._progress_due: float | None = self.observed if self.observed > observed else None
        self._retry_at = 0.0
        self.memory_failures = 0
        for src, service, _ in pairs:
            if len(self.known) >= self.config.max_pairs:
                break
            self.known.add((src, service))
        for key, first in before.items():
            if key not in self.known and len(self.known) < self.config.max_pairs:
                self.known.add(key)
            self._unsaved.setdefault(key, first)
        self._save()

    def feed(self, ev: Event) -> None:
        """Count observed time while learning; check one new connection between internal hosts on an admin port."""
        dport = ev.dport
        admin = ADMIN_PORTS.get(dport) if isinstance(dport, int) else None
        learning = self.observed < self.config.learning_s
        if admin is None and not learning:
            return  # after learning, most traffic: no time to observe, no admin service
        t = ev.time
        if not isinstance(t, _NUMBER) or not math.isfinite(t):
            return
        if learning:
            last = self.last_time
            # An event no later than the last one adds no observed time: skip the call (most flows).
            if last is None or t > last:
                self._observe(float(t))
        if admin is None or ev.proto != "tcp":
            return
        attrs = ev.attrs
        flags = ev.flags if isinstance(ev.flags, int) else 0
        if isinstance(attrs, dict) and attrs.get("flow") is True:
            if flags and not flags & SYN:
                return
        elif flags & (SYN | ACK) != SYN:
            return
        src, dst = ev.src, ev.dst
        internal = self.internal
        if src == dst or src not in internal or dst not in internal or (self.admins.networks and src in self.admins):
            return
        assert src is not None and dst is not None
        service, technique = admin
        key = (src, service)
        if key in self.known:
            if self.new.states:
                self._update(key, dst, ev)
            return
        if len(self.known) < self.config.max_pairs:
            self.known.add(key)
        self._save_pair(key, float(t))
        if learning:
            return
        st = self.new.get(key, t)
        st.add(dst, TARGET_CAP)
        f = st.open(self, f"New {service.upper()} use from {src} to {dst}: {src} never used {service.upper()} before",
                "medium", {"attacker": src, "victim": dst, "service": service}, ev, techniques=(technique,),
                learned_s=round(self.observed))
        st.update(ev, "targets")
        f.counts["connections"] = st.n
        f.attributes["targets"] = [dst]

    def _observe(self, t: float) -> None:
        last = self.last_time
        if last is not None and t > last:
            self.observed += min(t - last, self.config.learning_gap_s)
        if last is None or t > last:
            self.last_time = t
        if self.observed - self.saved >= SAVE_EVERY_S or self.observed >= self.config.learning_s:
            self.saved = self.observed
            self._progress_due = self.observed
            self._save()

    def _save_pair(self, key: tuple[str, str], first_seen: float) -> None:
        if len(self._unsaved) < self.config.max_pairs:
            self._unsaved.setdefault(key, first_seen)
        else:
            self.memory_failures += 1  # beyond the bound while the memory is away: this pair is not kept
        if isinstance(self.memory, InMemory) and len(self._learned_here) < self.config.max_pairs:
            self._learned_here.setdefault(key, first_seen)  # handed to the store's memory when it is attached
        self._save()

    def _save(self) -> None:
        """Hand what is due to the memory; a memory that fails (the store is away) is retried later, never fatal."""
        if not self._unsaved and self._progress_due is None:
            return
        now = time.monotonic()  # wall clock, not event time: this paces attempts at a server
        if now < self._retry_at:
            return
        try:
            while self._unsaved:
                (src, service), first = next(iter(self._unsaved.items()))
                self.memory.save_pair(src, service, first)
                del self._unsaved[(src, service)]
            if self._progress_due is not None:
                self.memory.save_progress(self._progress_due)
                self._progress_due = None
        except Exception as exc:  # noqa: BLE001 -- the barrier around the memory plugin (STYLE rule 2)
            if not self._retry_at:
                log.warning("lateral: cannot save what it learned (%s); kept and retried every %.0f s",
                            str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__, MEMORY_RETRY_S)
            self.memory_failures += 1
            self._retry_at = now + MEMORY_RETRY_S
        else:
            if self._retry_at:
                log.info("lateral: what it learned is saved again")
            self._retry_at = 0.0

    def _update(self, key: tuple[str, str], dst: str, ev: Event) -> None:
        """A further connection of a pair reported within the window joins its finding."""
        st = self.new.states.get(key)
        if st is None or st.finding is None or ev.time - st.finding.last_seen > self.config.window_s:
            return
        st.add(dst, TARGET_CAP)
        st.update(ev, "targets")
        f = st.finding
        f.counts["connections"] = st.n
        if len(st.items) <= SHOWN_TARGETS and dst not in f.attributes.get("targets", ()):
            f.attributes["targets"] = sorted(st.items)  # every host it reached, for the analyst (bounded)
        if len(st.items) > 1:
            f.title = f"New {key[1].upper()} use from {key[0]} to {len(st.items)} hosts: never used before"
