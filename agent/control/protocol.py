"""The wire format: one JSON object per line, UTF-8, in both directions.

    request   {"id": 1, "method": "suggestions.list", "params": {...}}
    success   {"id": 1, "ok": true, "result": {...}}
    failure   {"id": 1, "ok": false,
               "error": {"code": "permission_denied", "message": "...", "exit_status": 77, "details": {...}}}

A connection carries any number of requests, answered in order. The caller never sends who it is:
the daemon takes that from the socket's peer credentials.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ProtocolError

PROTOCOL_VERSION = 1
MAX_RESPONSE = 64 * 1024 * 1024  # a client's bound on one answer (audit pages, suggestion lists)
_METHOD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")

RequestId = int | str | None


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8") + b"\n"


def decode_request(line: bytes) -> tuple[RequestId, str, dict[str, Any]]:
    """(id, method, params) of a request line; ProtocolError when it is not a well-formed request."""
    try:
        msg = json.loads(line)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError("request is not a JSON object on one line") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("request is not a JSON object")
    rid = msg.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (int, str))):
        raise ProtocolError("request id must be an integer or a string")
    method = msg.get("method")
    if not isinstance(method, str) or not method or len(method) > 100 or not set(method) <= _METHOD_CHARS:
        raise ProtocolError("request needs a method name (lower-case dotted)")
    params = msg.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError("params must be a JSON object")
    return rid, method, params


def success(rid: RequestId, result: dict[str, Any]) -> bytes:
    """A success line."""
    return encode({"id": rid, "ok": True, "result": result})


def failure(rid: RequestId, code: str, message: str, exit_status: int,
            details: dict[str, Any] | None = None) -> bytes:
    """A failure line: code, message and the error's scalar details, never a traceback."""
    error: dict[str, Any] = {"code": code, "message": message, "exit_status": exit_status}
    if details:
        error["details"] = details
    return encode({"id": rid, "ok": False, "error": error})
