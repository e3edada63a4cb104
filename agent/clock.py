"""The injectable clock: nothing else in the project calls datetime.now() directly."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def fixed_clock(at: datetime) -> Clock:
    """Return a clock that always answers `at` (for tests and reproducible reports)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return lambda: at
