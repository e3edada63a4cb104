"""Counting and rate-limited logging of records a source had to skip."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Callable


class SkipCounter:
    """Counts skipped records by reason and logs at most one line per reason per interval."""

    def __init__(
        self,
        logger: logging.Logger,
        source: str,
        interval_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._source = source
        self._interval = interval_s
        self._monotonic = monotonic
        self._last_logged: dict[str, float] = {}
        self.counts: Counter[str] = Counter()
        self.repaired: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()

    def skip(self, reason: str, detail: str = "") -> None:
        """Record one skipped record; log it unless this reason was logged recently."""
        self._count("skipped", reason, detail)

    def repair(self, reason: str, detail: str = "") -> None:
        """Count a record kept with a field replaced (a time set to receipt time); not a skip, it became an Event."""
        self._count("repaired", reason, detail)

    def _count(self, what: str, reason: str, detail: str) -> None:
        counter = self.repaired if what == "repaired" else self.counts
        counter[reason] += 1
        now = self._monotonic()
        last = self._last_logged.get(reason)
        if last is None or now - last >= self._interval:
            self._last_logged[reason] = now
            self._log.warning(
                "%s: %s record (%s, %d so far)%s",
                self._source, what, reason, counter[reason], f": {detail[:120]!r}" if detail else "",
            )

    def ignore(self, reason: str) -> None:
        """Count a well-formed record that is deliberately not turned into an Event; never logged."""
        self.ignored[reason] += 1

    @property
    def total(self) -> int:
        """Total number of skipped records."""
        return sum(self.counts.values())
