"""Connector exceptions; library errors are translated into these at the boundary.

    ConnectorError
    ├── SourceError          a source could not be opened or read at all
    │   └── UnknownFormatError   content sniffing found no known format
    └── ParseError           one record could not be parsed (counted and skipped)
"""

from __future__ import annotations

import os
from typing import BinaryIO


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class SourceError(ConnectorError):
    """A source could not be opened or read."""


class UnknownFormatError(SourceError):
    """The content matched no format this project reads."""


class ParseError(ConnectorError):
    """A single record could not be parsed."""


def open_source(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a telemetry file for reading; an OSError becomes a SourceError naming the file."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from exc
