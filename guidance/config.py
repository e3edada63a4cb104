"""Guidance configuration: whom the deployment represents and when reminders fire."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class GuidanceConfig(BaseModel):
    """Organisation profile and reminder settings for the deadline tracker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organization: str = "Department of War"
