"""Policy configuration: autonomy level, suggestion lifetime, per-playbook rate limits."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PolicyConfig(BaseModel):
    """How far the agent may go on its own; `recommend` (people approve everything) is the default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    autonomy: Literal["observe", "recommend", "supervised"] = "recommend"
    suggestion_ttl_s: float = Field(4 * 3600.0, gt=0)
