"""[sources.ssh]: read-only collection from inventory devices over SSH, on a schedule.

```toml
[sources.ssh]
every_s = 900                      # 0 (the default) switches collection off
devices = ["fw1", "core-sw"]       # default: every inventory device with a [devices.ssh] section
collect = ["config", "arp"]        # running configuration / ruleset, and ARP tables
sudo = true                        # linux: run `nft -j list ruleset` through `sudo -n`
```

The commands per platform are fixed and read-only (cisco-ios: `show running-config`, `show ip
arp`; linux: `nft -j list ruleset`, `ip -j neigh`); `collect` chooses which of the two sets run.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from .base import Frozen
from .devices import DEVICE_NAME

CollectWhat = Literal["config", "arp"]


class SshCollection(Frozen):
    """Off unless every_s > 0."""

    every_s: float = Field(0.0, ge=0, description="how often inventory devices with [devices.ssh] are collected")
    devices: tuple[str, ...] = Field((), description="devices to collect (default: every device with [devices.ssh])")
    collect: tuple[CollectWhat, ...] = Field(("config", "arp"), min_length=1,
                                             description="what to read: config (drift) and/or arp (ARP tables)")
    sudo: bool = Field(True, description="linux: read the nftables ruleset through `sudo -n`")
    timeout_s: float = Field(30.0, gt=0, le=600, description="per command")
    concurrency: int = Field(4, ge=1, le=64, description="devices collected at the same time")
    max_snapshot: int = Field(512 * 1024, ge=4096, le=16 * 1024 * 1024,
                              description="characters of one command's output kept; the rest is cut")
    failure_log_s: float = Field(600.0, ge=0, description="a failing device is logged at most once per this time")

    @field_validator("devices")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not re.fullmatch(DEVICE_NAME, name):
                raise ValueError(f"not a device name: {name!r}")
        return tuple(dict.fromkeys(v))
