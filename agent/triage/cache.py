"""Verdicts remembered by incident version, so an unchanged incident is never sent twice."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

from ..models import Incident, TriageVerdict

CacheKey = tuple[str, str]


def evidence_version(incident: Incident) -> str:
    """A hash of what the verdict depends on: each finding's key, counts and last sighting."""
    parts = sorted(
        (f.key, f.count, sorted(f.counts.items()), round(f.last_seen, 6), sorted(f.evidence))
        for f in incident.findings.values())
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()[:32]


def cache_key(incident: Incident) -> CacheKey:
    """(fingerprint, evidence version)."""
    return incident.fingerprint, evidence_version(incident)


class VerdictCache:
    """A bounded LRU map from cache key to verdict; thread-safe."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[CacheKey, TriageVerdict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> TriageVerdict | None:
        """The remembered verdict, or None."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: CacheKey, verdict: TriageVerdict) -> None:
        """Remember a verdict, evicting the least recently used beyond the size."""
        if self._size <= 0:
            return
        with self._lock:
            self._items[key] = verdict
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
