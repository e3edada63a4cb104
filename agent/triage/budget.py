"""A sliding-hour token budget for model calls, on the injected clock."""

from __future__ import annotations

import threading
from collections import deque

from ..clock import Clock

WINDOW_S = 3600.0


class Reservation:
    """Tokens set aside for one call; settled with the real count once the answer is in."""

    __slots__ = ("at", "tokens")

    def __init__(self, at: float, tokens: int) -> None:
        self.at = at
        self.tokens = tokens


class TokenBudget:
    """At most `per_hour` tokens (prompt plus answer) in any sliding window of an hour; None is unlimited."""

    def __init__(self, per_hour: int | None, clock: Clock, window_s: float = WINDOW_S) -> None:
        self._limit = per_hour
        self._clock = clock
        self._window = window_s
        self._spent: deque[Reservation] = deque()
        self._lock = threading.Lock()

    def used(self) -> int:
        """Tokens counted within the current window."""
        with self._lock:
            self._prune(self._clock().timestamp())
            return sum(r.tokens for r in self._spent)

    def reserve(self, estimate: int) -> Reservation | None:
        """Set aside `estimate` tokens, or return None when that would exceed the budget."""
        now = self._clock().timestamp()
        with self._lock:
            self._prune(now)
            if self._limit is not None and sum(r.tokens for r in self._spent) + estimate > self._limit:
                return None
            entry = Reservation(now, max(0, estimate))
            self._spent.append(entry)
            return entry

    def settle(self, reservation: Reservation, actual: int) -> None:
        """Replace a reservation's estimate with the tokens the call really used."""
        with self._lock:
            reservation.tokens = max(0, actual)

    def _prune(self, now: float) -> None:
        while self._spent and self._spent[0].at <= now - self._window:
            self._spent.popleft()
