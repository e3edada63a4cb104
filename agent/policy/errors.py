"""Review-queue errors and the exit statuses the CLI maps them to.

    WatchstanderError (agent/errors.py)
    └── ReviewError
        ├── SuggestionNotFound        no suggestion with that id                          (exit 5)
        ├── IllegalTransition         the state machine does not allow it                 (exit 6)
        │   ├── AlreadyDecided        approved, rejected, queued... someone was first      (exit 6)
        │   ├── SuggestionSuperseded  an edit replaced it; act on the new one              (exit 6)
        │   └── SuggestionExpired     its TTL passed before it was approved or queued      (exit 7)
        ├── ApprovalRefused           this person may not approve it                       (exit 8)
        │   ├── RequesterCannotApprove   two-person integrity: not your own request
        │   └── DuplicateApprover        the same person cannot count twice
        ├── BindingBroken             what was approved is no longer what would run        (exit 9)
        │   ├── ParametersTampered    stored parameters differ from their recorded hash
        │   └── PlaybookChanged       the definition changed or lost its approval
        ├── ParametersRefused         the guard refused an edit's parameters; `.reason`    (exit 10)
        └── ConcurrentUpdate          another decision won a race; try again               (exit 11)
"""

from __future__ import annotations

from ..errors import EXIT_NOT_FOUND, Exit, WatchstanderError

EXIT_ILLEGAL = Exit.ILLEGAL_TRANSITION
EXIT_EXPIRED = Exit.EXPIRED
EXIT_APPROVAL_REFUSED = Exit.APPROVAL_REFUSED
EXIT_BINDING = Exit.BINDING_BROKEN
EXIT_PARAMETERS = Exit.PARAMETERS_REFUSED
EXIT_CONCURRENT = Exit.CONCURRENT_UPDATE


class ReviewError(WatchstanderError):
    """Base of every review-queue error."""

    def __init__(self, message: str, suggestion_id: int | None = None) -> None:
        super().__init__(message)
        self.suggestion_id = suggestion_id


class SuggestionNotFound(ReviewError):
    """No suggestion with that id exists."""

    exit_status = EXIT_NOT_FOUND


class IllegalTransition(ReviewError):
    """The suggestion's state does not allow the requested transition."""

    exit_status = EXIT_ILLEGAL

    def __init__(self, message: str, suggestion_id: int | None = None, state: str | None = None,
                 target: str | None = None) -> None:
        super().__init__(message, suggestion_id)
        self.state = state
        self.target = target


class AlreadyDecided(IllegalTransition):
    """Someone already approved, rejected or ran it; an approval is single-use."""


class SuggestionSuperseded(IllegalTransition):
    """An edit replaced this suggestion; `superseded_by` names the new one."""

    def __init__(self, message: str, suggestion_id: int | None = None, superseded_by: int | None = None) -> None:
        super().__init__(message, suggestion_id, "superseded")
        self.superseded_by = superseded_by


class SuggestionExpired(IllegalTransition):
    """Its time to live passed before it was approved (or, once approved, queued)."""

    exit_status = EXIT_EXPIRED


class ApprovalRefused(ReviewError):
    """This identity may not approve this suggestion."""

    exit_status = EXIT_APPROVAL_REFUSED


class RequesterCannotApprove(ApprovalRefused):
    """Two-person integrity: whoever asked for an action does not approve it."""


class DuplicateApprover(ApprovalRefused):
    """The same identity cannot be counted twice towards the approvers a suggestion needs."""


class BindingBroken(ReviewError):
    """What would run is no longer what was suggested and approved."""

    exit_status = EXIT_BINDING


class ParametersTampered(BindingBroken):
    """The stored parameters do not match the hash recorded when the suggestion was made."""


class PlaybookChanged(BindingBroken):
    """The playbook's current approved definition is not the one the suggestion was bound to."""


class ParametersRefused(ReviewError):
    """The policy guard refused an edit; `reason` is its stable code (e.g. "bad_parameter:address")."""

    exit_status = EXIT_PARAMETERS

    def __init__(self, message: str, suggestion_id: int | None = None, reason: str = "") -> None:
        super().__init__(message, suggestion_id)
        self.reason = reason


class ConcurrentUpdate(ReviewError):
    """Another decision changed the suggestion between reading and writing it."""

    exit_status = EXIT_CONCURRENT
