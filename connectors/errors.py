"""Connector exceptions; library errors are translated into these at the boundary.

    ConnectorError
    ├── SourceError          a source could not be opened or read at all
    │   └── UnknownFormatError   content sniffing found no known format
    └── ParseError           one record could not be parsed (counted and skipped)
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class SourceError(ConnectorError):
    """A source could not be opened or read."""


class UnknownFormatError(SourceError):
    """The content matched no format this project reads."""


class ParseError(ConnectorError):
    """A single record could not be parsed."""
