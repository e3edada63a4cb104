"""Triage configuration: which model (if any) refines the baseline verdict."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TriageConfig(BaseModel):
    """`model = "builtin"` (the default) uses the baseline analyst alone, with no network."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field("builtin", description='"builtin" or "provider:model-name"')
