"""Agent exceptions and the process exit statuses they map to.

    WatchstanderError
    ├── ConfigError        the configuration is invalid (exit 2)
    ├── StoreError         the store could not be opened or migrated (exit 3)
    └── InputError         a file given on the command line cannot be used (exit 4)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_STORE = 3
EXIT_INPUT = 4
EXIT_NOT_FOUND = 5


class WatchstanderError(Exception):
    """Base of the agent's own errors; carries the exit status a CLI should use."""

    exit_status = EXIT_FAILURE


class ConfigError(WatchstanderError):
    """The configuration is invalid; `problems` lists (key path, message) pairs."""

    exit_status = EXIT_CONFIG

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class StoreError(WatchstanderError):
    """The store could not be opened, migrated or written."""

    exit_status = EXIT_STORE


class InputError(WatchstanderError):
    """An input file cannot be read or has no known format."""

    exit_status = EXIT_INPUT


class NotFoundError(WatchstanderError):
    """A requested record does not exist."""

    exit_status = EXIT_NOT_FOUND
