"""[sources.ssh]: read-only collection from inventory devices over SSH, on a schedule."""

from __future__ import annotations

from pydantic import Field

from .base import Frozen


class SshCollection(Frozen):
    """Off unless every_s > 0."""

    every_s: float = Field(0.0, ge=0, description="how often inventory devices with [devices.ssh] are collected")
