"""Agent exceptions, and the one table of process exit statuses for every command.

    WatchstanderError
    ├── ConfigError        the configuration is invalid (exit 2)
    ├── StoreError         the store could not be opened or migrated (exit 3)
    ├── InputError         a file given on the command line cannot be used (exit 4)
    ├── NotFoundError      a requested record does not exist (exit 5)
    ├── ReviewError        the review queue's typed refusals (policy/errors.py, exits 5-11)
    ├── IncidentError      the incident lifecycle's typed refusals; `.reason` is a stable code
    │   ├── IncidentNotFound          no incident with that id ("not_found")             (exit 5)
    │   ├── IncidentTransitionError   its status does not allow that ("already_closed",
    │   │                             "already_acknowledged", "not_closed")            (exit 6)
    │   ├── IncidentInputError        a disposition or text that cannot be kept
    │   │                             ("bad_disposition", "empty_text", "text_too_long",
    │   │                             "bad_text", "bad_assignee")                       (exit 4)
    │   └── IncidentConcurrentUpdate  another change won a race; try again ("concurrent_update") (exit 11)
    └── ControlError       the control socket could not be used (control/errors.py, exits 1, 4, 69, 77)

Each status means one thing across the whole command line; a room's errors take their status
from this table and never invent a number of their own.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """Every exit status the `watchstander` command uses, and what it means."""

    OK = 0                    # success
    FAILURE = 1               # unexpected failure
    CONFIG = 2                # invalid configuration (every bad key is named)
    STORE = 3                 # the store could not be opened or migrated
    INPUT = 4                 # an input (file, parameter, request) cannot be used
    NOT_FOUND = 5             # the requested record does not exist
    ILLEGAL_TRANSITION = 6    # the suggestion's state does not allow that (decided, superseded)
    EXPIRED = 7               # the suggestion expired before it was decided
    APPROVAL_REFUSED = 8      # this person may not approve it (requester, already counted)
    BINDING_BROKEN = 9        # what was approved is no longer what would run
    PARAMETERS_REFUSED = 10   # the guard refused an edit's parameters
    CONCURRENT_UPDATE = 11    # another decision won a race; try again
    AUDIT_BROKEN = 12         # the audit chain does not verify
    RUN_FAILED = 13           # a run ended failed, rolled_back, rollback_failed or interrupted
    DEVICE = 14               # a device could not be reached, verified (host key) or logged in to
    UNAVAILABLE = 69          # the daemon is not reachable (sysexits.h EX_UNAVAILABLE)
    NOPERM = 77               # the caller's role does not allow the request (sysexits.h EX_NOPERM)
    INTERRUPTED = 130         # interrupted (SIGINT)


EXIT_OK = Exit.OK
EXIT_FAILURE = Exit.FAILURE
EXIT_CONFIG = Exit.CONFIG
EXIT_STORE = Exit.STORE
EXIT_INPUT = Exit.INPUT
EXIT_NOT_FOUND = Exit.NOT_FOUND


class WatchstanderError(Exception):
    """Base of the agent's own errors; carries the exit status a CLI should use."""

    exit_status: int = EXIT_FAILURE


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


class IncidentError(WatchstanderError):
    """Base of the incident lifecycle's refusals; `reason` is a stable machine code, `incident_id` the record."""

    default_reason = "incident_error"

    def __init__(self, message: str, incident_id: int | None = None, reason: str | None = None,
                 state: str | None = None) -> None:
        super().__init__(message)
        self.incident_id = incident_id
        self.reason = reason or self.default_reason
        self.state = state


class IncidentNotFound(IncidentError, NotFoundError):
    """No incident with that id exists."""

    exit_status = EXIT_NOT_FOUND
    default_reason = "not_found"


class IncidentTransitionError(IncidentError):
    """The incident's status does not allow the requested change (e.g. closing a closed incident)."""

    exit_status = Exit.ILLEGAL_TRANSITION
    default_reason = "illegal_transition"


class IncidentInputError(IncidentError):
    """A disposition, assignee or text that cannot be kept (unknown, empty, too long, control characters)."""

    exit_status = EXIT_INPUT
    default_reason = "bad_input"


class IncidentConcurrentUpdate(IncidentError):
    """Another change moved the incident between reading and writing it; try again."""

    exit_status = Exit.CONCURRENT_UPDATE
    default_reason = "concurrent_update"
