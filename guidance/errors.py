"""Errors of the guidance package; the agent translates them into its own at the CLI boundary.

    GuidanceError
    ├── RuleSyntaxError     a deadline rule string cannot be parsed
    ├── CatalogueError      a catalogue file is unreadable or invalid (carries every problem)
    ├── TrackingError       a requested tracking change is not allowed (e.g. override without reason)
    ├── ReportError         a report could not be written
    └── NotifyError         a reminder channel (webhook, SMTP) failed
"""

from __future__ import annotations


class GuidanceError(Exception):
    """Base of every error raised by the guidance package."""


class RuleSyntaxError(GuidanceError, ValueError):
    """A deadline rule string does not follow the grammar in guidance/rules.py."""


class CatalogueError(GuidanceError):
    """A catalogue could not be loaded; `problems` lists (where, what) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        base = super().__str__()
        if not self.problems:
            return base
        return base + "".join(f"\n  {where}: {what}" for where, what in self.problems)


class TrackingError(GuidanceError):
    """A tracking change breaks a rule of the tracker."""


class ReportError(GuidanceError):
    """A report could not be produced or written."""


class NotifyError(GuidanceError):
    """A reminder could not be delivered through one channel."""

    def __init__(self, channel: str, message: str) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel
