"""[sources.snmp]: SNMP traps (who may send them) and polling of inventory devices.

```toml
[sources]
snmp_traps = ["0.0.0.0:162"]

[sources.snmp]
poll_s = 60                               # 0: no polling
poll_devices = ["sw1", "sw2"]             # default: every device with [devices.snmp]

[[sources.snmp.trap_communities]]         # SNMPv1/v2c: a community a sender must use
name = "branch-switches"
community_credential = "trap-community"   # systemd credential name, or community_file = "/path"

[[sources.snmp.trap_users]]               # SNMPv3 USM, authPriv only
user = "trapper"
engine_id = "0x8000000001020304"          # the sender's snmpEngineID (snmptrap -e); or, for several
                                          # senders sharing the user: engine_ids = ["0x80...", ...]
auth_protocol = "SHA-256"
priv_protocol = "AES-128"
auth_key_credential = "trap-auth"
priv_key_credential = "trap-priv"
```

Secrets are only named here (credentials or owner-only files, as in [devices]); they are read
when the receiver starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from .base import Frozen
from .devices import CREDENTIAL_NAME, DEVICE_NAME, one_secret_source

ENGINE_ID = r"^(0x|0X)?([0-9A-Fa-f]{2}){5,32}$"  # RFC 3411 SnmpEngineID: 5..32 octets


class TrapCommunity(Frozen):
    """A v1/v2c community accepted on the trap receivers; any other community is dropped and counted."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="a label for logs")
    community_credential: str | None = Field(None, pattern=CREDENTIAL_NAME)
    community_file: Path | None = None

    @model_validator(mode="after")
    def _secret(self) -> TrapCommunity:
        one_secret_source(self.community_credential, self.community_file, "community")
        return self


class TrapUser(Frozen):
    """An SNMPv3 USM user that may send notifications (authPriv), as configured on the sender."""

    user: str = Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")
    engine_id: str | None = Field(None, pattern=ENGINE_ID,
                                  description="the sender's snmpEngineID in hex (what snmptrap -e takes)")
    engine_ids: tuple[str, ...] = Field((), max_length=4096,
                                        description="several senders that share this user and keys: their engine ids")
    auth_protocol: Literal["SHA-256", "SHA-384", "SHA-512"] = "SHA-256"
    priv_protocol: Literal["AES-128", "AES-192", "AES-256"] = "AES-128"
    auth_key_credential: str | None = Field(None, pattern=CREDENTIAL_NAME)
    auth_key_file: Path | None = None
    priv_key_credential: str | None = Field(None, pattern=CREDENTIAL_NAME)
    priv_key_file: Path | None = None

    @model_validator(mode="after")
    def _secrets(self) -> TrapUser:
        if (self.engine_id is None) == (not self.engine_ids):
            raise ValueError(f"trap user {self.user}: give engine_id (one sender) or engine_ids (several), not both")
        for text in self.engine_ids:
            if not re.fullmatch(ENGINE_ID, text):
                raise ValueError(f"trap user {self.user}: engine_ids: not an snmpEngineID in hex: {text[:70]!r}")
        lowered = [e.lower().removeprefix("0x") for e in self.senders]
        if len(set(lowered)) != len(lowered):
            raise ValueError(f"trap user {self.user}: an engine id is listed twice")
        one_secret_source(self.auth_key_credential, self.auth_key_file, "auth_key")
        one_secret_source(self.priv_key_credential, self.priv_key_file, "priv_key")
        return self

    @property
    def senders(self) -> tuple[str, ...]:
        """The engine ids of every sender this user stands for."""
        return (self.engine_id,) if self.engine_id is not None else self.engine_ids


class SnmpSources(Frozen):
    """Trap receivers are listed in [sources] snmp_traps; polling is off unless poll_s > 0."""

    poll_s: float = Field(0.0, ge=0, description="how often inventory devices with [devices.snmp] are polled; 0: off")
    poll_devices: tuple[str, ...] = Field((), description="devices to poll; empty: every device with [devices.snmp]")
    poll_timeout_s: float = Field(5.0, gt=0, le=60, description="per device and poll")
    trap_communities: tuple[TrapCommunity, ...] = ()
    trap_users: tuple[TrapUser, ...] = ()

    @model_validator(mode="after")
    def _checks(self) -> SnmpSources:
        for name in self.poll_devices:
            if not re.fullmatch(DEVICE_NAME, name):
                raise ValueError(f"poll_devices: not a device name: {name!r}")
        if self.poll_s and self.poll_s < self.poll_timeout_s:
            raise ValueError("poll_s must be at least poll_timeout_s")
        return self
