"""Playbook exceptions; the agent maps them to exit statuses and review-queue reasons.

    PlaybookError
    ├── PlaybookValidationError   a playbook file is not valid; `problems` names file, line and key
    ├── UnknownActionError        a step names an action that is not registered
    ├── UnknownPlaybookError      the catalogue has no playbook with that id
    ├── ParameterError            a parameter does not match its declared input type; `input` names it
    └── NotApprovedError          the playbook's exact content hash has no current approval
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a playbook file: where it is and what is wrong."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class PlaybookError(Exception):
    """Base of every error the playbooks package raises."""


class PlaybookValidationError(PlaybookError):
    """A playbook file could not be loaded; every problem carries file, line and key."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = str(problems[0]) if problems else "invalid playbook"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)


class UnknownActionError(PlaybookError):
    """No action is registered under this dotted name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown action {name!r}")


class UnknownPlaybookError(PlaybookError):
    """The catalogue holds no playbook with this id."""

    def __init__(self, playbook_id: str) -> None:
        self.playbook_id = playbook_id
        super().__init__(f"no playbook with id {playbook_id!r}")


class ParameterError(PlaybookError):
    """A parameter was missing, unknown, or not a valid value of its input's type."""

    def __init__(self, input_name: str, reason: str) -> None:
        self.input = input_name
        self.reason = reason
        super().__init__(f"parameter {input_name!r}: {reason}")


class NotApprovedError(PlaybookError):
    """The playbook's exact content has no current approval, so it may be neither suggested nor run."""

    def __init__(self, playbook_id: str, content_hash: str, status: str) -> None:
        self.playbook_id = playbook_id
        self.content_hash = content_hash
        self.status = status
        super().__init__(f"playbook {playbook_id!r} (sha256 {content_hash[:12]}) is not approved: {status}")
