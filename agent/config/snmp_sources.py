"""[sources.snmp]: SNMP traps (who may send them) and polling of inventory devices."""

from __future__ import annotations

from pydantic import Field

from .base import Frozen


class SnmpSources(Frozen):
    """Trap receivers are listed in [sources] snmp_traps; polling is off unless poll_s > 0."""

    poll_s: float = Field(0.0, ge=0, description="how often inventory devices with [devices.snmp] are polled; 0: off")
