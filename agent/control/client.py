"""The CLI's side of the control socket, and the switch between daemon mode and no-daemon mode."""

from __future__ import annotations

import itertools
import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..config.model import AgentConfig
from .errors import ControlError, ControlTimeout, DaemonNotRunning, PermissionDenied, ProtocolError, from_wire
from .protocol import MAX_RESPONSE, encode

log = logging.getLogger(__name__)

T = TypeVar("T")
_ids = itertools.count(1)


class ControlClient:
    """Sends one request per call to the daemon's control socket and waits for its answer."""

    def __init__(self, path: str | Path, timeout: float = 10.0, max_response: int = MAX_RESPONSE) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.max_response = max_response

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The method's result; raises DaemonNotRunning, PermissionDenied, ControlTimeout or RemoteError."""
        rid = next(_ids)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        with sock:
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise DaemonNotRunning(f"no daemon is listening on {self.path}") from exc
            except PermissionError as exc:
                raise PermissionDenied(f"cannot connect to {self.path}: permission denied (connecting needs "
                                       "membership of the socket's group)") from exc
            except socket.timeout as exc:
                raise ControlTimeout(f"the daemon on {self.path} did not accept the connection in time") from exc
            except OSError as exc:
                raise ControlError(f"cannot connect to {self.path}: {exc.strerror or exc}") from exc
            try:
                sock.sendall(encode({"id": rid, "method": method, "params": params or {}}))
                line = self._read_line(sock)
            except socket.timeout as exc:
                raise ControlTimeout(f"the daemon did not answer {method} within {self.timeout:g} s") from exc
            except OSError as exc:
                raise ControlError(f"control connection to {self.path} failed: {exc.strerror or exc}") from exc
        return _result(line, rid)

    def _read_line(self, sock: socket.socket) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            end = chunk.find(b"\n")
            if end >= 0:
                chunks.append(chunk[:end])
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_response:
                raise ProtocolError(f"the daemon's answer is longer than {self.max_response} bytes")
        if not chunks:
            raise ProtocolError("the daemon closed the connection without answering")
        return b"".join(chunks)


def _result(line: bytes, rid: int) -> dict[str, Any]:
    try:
        msg = json.loads(line)
    except ValueError as exc:
        raise ProtocolError("the daemon's answer is not JSON") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("the daemon's answer is not a JSON object")
    if msg.get("ok") is True and isinstance(msg.get("result"), dict):
        if msg.get("id") != rid:
            raise ProtocolError("the daemon answered a different request")
        result: dict[str, Any] = msg["result"]
        return result
    err = msg.get("error")
    if msg.get("ok") is False and isinstance(err, dict):
        status = err.get("exit_status")
        details = err.get("details")
        raise from_wire(str(err.get("code", "unknown")), str(err.get("message", "")),
                        status if isinstance(status, int) and not isinstance(status, bool) else 1,
                        details if isinstance(details, dict) else None)
    raise ProtocolError("the daemon's answer has neither a result nor an error")


class Caller(Protocol):
    """Who asks and where the daemon listens: what the command line's context provides."""

    @property
    def config(self) -> AgentConfig: ...

    @property
    def identity(self) -> str: ...


def via_daemon_or_local(ctx: Caller, method: str, params: dict[str, Any],
                        local_fn: Callable[[str], T], *, local: bool = False) -> dict[str, Any] | T:
    """Send `method` to the daemon when one answers on the configured socket, else run it in-process.

    Daemon mode: the daemon attaches the identity it authenticated from the socket's peer
    credentials and checks the method's role. No-daemon mode (replay, demo, forensics on a copy of
    the store, or `local=True`): `local_fn(ctx.identity)` runs here with the invoking OS user as the
    identity and no role check -- whoever can write the store file can change it anyway.
    `local_fn` must return what the daemon's method returns, so callers print both alike.

    Only DaemonNotRunning falls back. PermissionDenied, a timeout or a remote failure are raised:
    the daemon is there, and going around it would bypass its checks or act twice.
    """
    if not local:
        control = ctx.config.control
        try:
            return ControlClient(control.socket, control.timeout_s).call(method, params)
        except DaemonNotRunning as exc:
            log.debug("%s; running %s in-process as %s", exc, method, ctx.identity)
    return local_fn(ctx.identity)
