"""Connector exceptions; library errors are translated into these at the boundary.

    ConnectorError
    ├── SourceError          a source could not be opened or read at all
    │   └── UnknownFormatError   content sniffing found no known format
    ├── ParseError           one record could not be parsed (counted and skipped)
    └── DeviceError          an action on a device failed; names the device (`.device`)
        ├── DeviceUnreachable    no connection (refused, no route, name not resolved)
        ├── DeviceTimeout        the device did not answer in time
        ├── HostKeyError         the SSH host key could not be verified (`.fingerprint` offered)
        │   ├── HostKeyUnknown       no key for this host in the configured known_hosts
        │   └── HostKeyChanged       known_hosts holds another key for this host
        ├── AuthenticationFailed the key (SSH) or the auth/priv keys (SNMP) were refused
        ├── DeviceRefused        the device answered with an error (no such object, "% Invalid input")
        └── DeviceProtocolError  the answer made no sense for the protocol
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


class DeviceError(ConnectorError):
    """An operation on a device failed; the message names the device, `.device` holds its name."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device
        self.detail = message


class DeviceUnreachable(DeviceError):
    """No connection could be made to the device."""


class DeviceTimeout(DeviceError):
    """The device did not answer within the time allowed."""


class HostKeyError(DeviceError):
    """The SSH host key offered by the device could not be verified."""

    def __init__(self, device: str, message: str, fingerprint: str) -> None:
        super().__init__(device, message)
        self.fingerprint = fingerprint


class HostKeyUnknown(HostKeyError):
    """The configured known_hosts has no key for this host."""


class HostKeyChanged(HostKeyError):
    """The configured known_hosts holds a different key for this host."""


class AuthenticationFailed(DeviceError):
    """The device refused our credentials (SSH key, SNMPv3 auth or privacy key)."""


class DeviceRefused(DeviceError):
    """The device understood the request and refused it (no such object, not writable, CLI error)."""


class DeviceProtocolError(DeviceError):
    """The device's answer made no sense for the protocol."""


def open_source(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a telemetry file for reading; an OSError becomes a SourceError naming the file."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from exc
