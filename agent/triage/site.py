"""The site context a triage model sees: what the inventory says about the incident's addresses."""

from __future__ import annotations

from typing import Any

from ..assets import AssetIndex
from ..models import Incident

MAX_ADDRESSES = 32


def asset_context(incident: Incident, assets: AssetIndex) -> dict[str, Any]:
    """Address -> {name, criticality, protected, role} for each entity address the inventory knows."""
    out: dict[str, Any] = {}
    for role, values in incident.entities().items():
        for value in values:
            for address in value.split(","):
                asset = assets.lookup(address.strip())
                if asset is None or address in out or len(out) >= MAX_ADDRESSES:
                    continue
                out[address] = {"asset": asset.name, "criticality": asset.criticality,
                                "protected": asset.protected, "role_in_incident": role}
    return out
