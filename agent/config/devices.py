"""The device inventory: what the runner may act on, how to reach it, and which roles it plays.

```toml
[[devices]]
name = "fw1"                       # what playbooks and suggestions call it
address = "10.0.0.1"
port = 22                          # SSH port
platform = "linux"                 # linux | cisco-ios (or ios)
roles = ["linux-firewall", "linux-host"]

[devices.ssh]
user = "watchstander"
key_credential = "fw1-ssh-key"     # systemd credential name (LoadCredential=), or key_file = "/path"
known_hosts = "/etc/watchstander/known_hosts"
algorithms = "fips"                # default | fips

[devices.snmp]                     # SNMPv3 authPriv unless version = "2c" is chosen explicitly
user = "watchstander"
auth_protocol = "SHA-256"
priv_protocol = "AES-128"
auth_key_credential = "sw1-snmp-auth"
priv_key_credential = "sw1-snmp-priv"
```

Secrets are never in this file: only the names of systemd credentials, or paths of files only
their owner may read. They are read when a device is used, not when the config is loaded.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Frozen

DEVICE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # playbooks/actions.py DeviceRef
CREDENTIAL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
Platform = Literal["linux", "cisco-ios"]


def one_secret_source(credential: str | None, file: Path | None, what: str, *, required: bool = True) -> None:
    """ValueError unless exactly one of `{what}_credential` and `{what}_file` is given (or none, if not required)."""
    if credential and file:
        raise ValueError(f"give {what}_credential or {what}_file, not both")
    if required and not (credential or file):
        raise ValueError(f"{what}_credential (a systemd credential name) or {what}_file is required")


class DeviceSsh(Frozen):
    """How the runner logs in over SSH: key authentication only, host keys from known_hosts only."""

    user: str = Field(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")
    key_credential: str | None = Field(None, pattern=CREDENTIAL_NAME)
    key_file: Path | None = None
    known_hosts: Path = Field(description="known_hosts file holding this device's host key (required)")
    algorithms: Literal["default", "fips"] = "default"
    enable_credential: str | None = Field(None, pattern=CREDENTIAL_NAME,
                                          description="IOS enable secret, if the device asks for one")
    connect_timeout_s: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _key(self) -> DeviceSsh:
        one_secret_source(self.key_credential, self.key_file, "key", required=True)
        return self


class DeviceSnmp(Frozen):
    """SNMP access: v3 authPriv with SHA-2 and AES by default; v2c only when chosen explicitly."""

    version: Literal["3", "2c"] = "3"
    port: int = Field(161, ge=1, le=65535)
    user: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,32}$")
    auth_protocol: Literal["SHA-256", "SHA-384", "SHA-512"] = "SHA-256"
    priv_protocol: Literal["AES-128", "AES-192", "AES-256"] = "AES-128"
    auth_key_credential: str | None = Field(None, pattern=CREDENTIAL_NAME)
    auth_key_file: Path | None = None
    priv_key_credential: str | None = Field(None, pattern=CREDENTIAL_NAME)
    priv_key_file: Path | None = None
    community_credential: str | None = Field(None, pattern=CREDENTIAL_NAME)
    community_file: Path | None = None
    retries: int = Field(1, ge=0, le=5)

    @field_validator("version", mode="before")
    @classmethod
    def _version_number(cls, v: object) -> object:
        return "3" if v == 3 and not isinstance(v, bool) else v  # TOML `version = 3` is an integer

    @model_validator(mode="after")
    def _version(self) -> DeviceSnmp:
        if self.version == "3":
            if self.user is None:
                raise ValueError("user is required for SNMPv3")
            one_secret_source(self.auth_key_credential, self.auth_key_file, "auth_key", required=True)
            one_secret_source(self.priv_key_credential, self.priv_key_file, "priv_key", required=True)
            if self.community_credential or self.community_file:
                raise ValueError("a community is for version = \"2c\" only")
        else:
            one_secret_source(self.community_credential, self.community_file, "community", required=True)
            if self.user or self.auth_key_credential or self.auth_key_file or self.priv_key_credential \
                    or self.priv_key_file:
                raise ValueError("version 2c takes only a community; remove the SNMPv3 keys or use version 3")
        return self


class Device(Frozen):
    """One device in the inventory."""

    name: str = Field(pattern=DEVICE_NAME)
    address: str
    port: int = Field(22, ge=1, le=65535, description="SSH port")
    platform: Platform = "linux"
    roles: tuple[str, ...] = Field((), max_length=32)
    description: str = Field("", max_length=500)
    ssh: DeviceSsh | None = None
    snmp: DeviceSnmp | None = None

    @field_validator("platform", mode="before")
    @classmethod
    def _platform(cls, v: object) -> object:
        return "cisco-ios" if v == "ios" else v  # "ios" is what people write; playbooks say cisco-ios

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_address(v))
        except ValueError:
            # An all-digit last label is a mistyped IP ("10.0.0.256", or "1.2.3", which resolvers read as 1.2.0.3).
            if not _HOSTNAME.fullmatch(v) or v.rsplit(".", 1)[-1].isdigit():
                raise ValueError(f"not an IP address or host name: {v!r}") from None
            return v.lower()

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for role in v:
            if not re.fullmatch(r"^[a-z][a-z0-9-]{0,63}$", role):
                raise ValueError(f"not a role name (lower case, digits, -): {role!r}")
        return tuple(dict.fromkeys(v))


def unique_devices(devices: tuple[Device, ...]) -> tuple[Device, ...]:
    """The devices, or ValueError naming duplicate names."""
    names = [d.name for d in devices]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate device names: {', '.join(dupes)}")
    return devices
