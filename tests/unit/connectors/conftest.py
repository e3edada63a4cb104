"""Factories shared by the connector tests: a fixed clock and skip counters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from watchstander.connectors.skips import SkipCounter

# Every year-less timestamp in these tests is read "today": 2025-03-15 12:00 UTC.
NOW = datetime(2025, 3, 15, 12, 0, 0, tzinfo=timezone.utc)


def fixed_clock(when: datetime = NOW) -> Callable[[], datetime]:
    """A clock that always reads `when`."""
    return lambda: when


def new_skips(source: str = "test") -> SkipCounter:
    """A SkipCounter whose logger is quiet in test output."""
    return SkipCounter(logging.getLogger(f"tests.connectors.{source}"), source, monotonic=lambda: 0.0)


@pytest.fixture
def skips() -> SkipCounter:
    """A fresh SkipCounter."""
    return new_skips()
