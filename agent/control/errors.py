"""Control-socket errors, shared by the daemon (which sends them as codes) and the client.

    WatchstanderError
    └── ControlError            the control socket could not be used (exit 1)
        ├── DaemonNotRunning    no socket, or nobody listening on it (exit 69, EX_UNAVAILABLE)
        ├── ControlTimeout      the daemon did not answer in time (exit 69)
        ├── ProtocolError       a request or response that is not one JSON object per line
        │   └── MessageTooLarge the request line is longer than [control] max_message
        ├── InvalidParams       the method's parameters are missing or of the wrong type (exit 4)
        ├── PermissionDenied    the caller's roles do not allow the method (exit 77, EX_NOPERM)
        │   └── NoRole          the caller is in none of the groups of [control.roles]
        └── RemoteError         the method failed in the daemon; carries the daemon's code and exit status
            └── UnknownMethod   no method of that name is registered

Errors cross the socket as `{"code", "message", "exit_status"}`; the client turns the codes of
this module back into these types and everything else into RemoteError with the same exit
status the command would have had in-process. Nothing branches on message text.
"""

from __future__ import annotations

from typing import Any

from ..errors import EXIT_INPUT, Exit, WatchstanderError

EXIT_UNAVAILABLE = Exit.UNAVAILABLE
EXIT_NOPERM = Exit.NOPERM


class ControlError(WatchstanderError):
    """Base of the control-socket errors; `code` is what travels over the socket."""

    code = "control_error"


class DaemonNotRunning(ControlError):
    """The control socket is absent or nobody accepts connections on it (no-daemon mode applies)."""

    code = "daemon_not_running"
    exit_status = EXIT_UNAVAILABLE


class ControlTimeout(ControlError):
    """The daemon accepted the connection but did not answer within the timeout."""

    code = "timeout"
    exit_status = EXIT_UNAVAILABLE


class ProtocolError(ControlError):
    """A message that is not one JSON object on one line, or lacks a field the protocol needs."""

    code = "bad_request"


class MessageTooLarge(ProtocolError):
    """A request line longer than the configured maximum."""

    code = "too_large"


class InvalidParams(ControlError):
    """A method was called with missing or mistyped parameters."""

    code = "invalid_params"
    exit_status = EXIT_INPUT


class PermissionDenied(ControlError):
    """The authenticated caller's roles do not allow this method."""

    code = "permission_denied"
    exit_status = EXIT_NOPERM


class NoRole(PermissionDenied):
    """The caller is in none of the Unix groups that [control.roles] maps to a role."""

    code = "no_role"


class RemoteError(ControlError):
    """A method failed inside the daemon; `code` and `exit_status` are the daemon's."""

    def __init__(self, code: str, message: str, exit_status: int = 1,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.exit_status = exit_status
        self.details: dict[str, Any] = details or {}


class UnknownMethod(RemoteError):
    """No method of that name is registered in the daemon."""

    def __init__(self, message: str, exit_status: int = 1) -> None:
        super().__init__("unknown_method", message, exit_status)


def error_code(exc: BaseException) -> str:
    """The wire code of a project error: its `code`, else its class name in snake case without 'Error'."""
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    name = type(exc).__name__.removesuffix("Error") or type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


# Codes the client turns back into the types above (RemoteError for everything else).
_BY_CODE: dict[str, type[ControlError]] = {
    cls.code: cls for cls in (ProtocolError, MessageTooLarge, InvalidParams, PermissionDenied, NoRole)
}


def from_wire(code: str, message: str, exit_status: int, details: dict[str, Any] | None = None) -> ControlError:
    """Rebuild the error a daemon reported."""
    if code == "unknown_method":
        return UnknownMethod(message, exit_status=exit_status)
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message)
    return RemoteError(code, message, exit_status, details)
