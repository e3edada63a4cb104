"""One parsed syslog line before message normalisation: shared by the parser and the normaliser."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SyslogRecord:
    """One parsed syslog line before message normalisation."""

    time: float
    host: str | None
    app: str | None
    pid: str | None
    msg: str
    facility: int | None = None
    severity: int | None = None
