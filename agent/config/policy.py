"""Policy configuration: autonomy level, suggestion lifetime, rate limits, pinned device parameters.

```toml
[policy]
autonomy = "recommend"            # observe | recommend | supervised
suggestion_ttl_s = 14400          # a suggestion (and its approval) expires after this long
rate_limit_per_hour = 20          # suggestions per playbook per hour, unless overridden below
system_identity = "watchstander:triage"

[policy.rate_limits]
switch-port-shutdown = 2

[policy.people]                   # one person, one approval, whichever door they use
alice = ["uid:1001", "console:1234567890@mil"]

[policy.defaults.capture-incident-traffic]
interface = "span0"               # what the analyst cannot know; the action may not change it
# A device input needs no pin when one inventory device has its role (docs/runner.md); pin one
# here to choose among several:  [policy.defaults.block-address-nftables] firewall = "fw1"
```
"""

from __future__ import annotations

import re
from typing import Literal, cast

from pydantic import Field, field_validator

from .base import Frozen

# The same alphabet the playbook input types accept (playbooks/inputs.py SAFE_VALUE); a configured
# value is validated again against its input's type by the guard, this only catches typos early.
_SAFE = re.compile(r"^[A-Za-z0-9._:/-]{1,253}$")
_PLAYBOOK_ID = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
_INPUT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_PERSON = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_IDENTITY = re.compile(r"^(uid:[0-9]{1,10}|console:[^\s\x00-\x1f\x7f]{1,256})$")

ParamValue = str | int | list[str]

# Distinct approvers a suggestion needs, by the playbook's declared risk (two-person integrity for high).
MIN_APPROVERS: dict[str, int] = {"low": 1, "medium": 1, "high": 2}


class PolicyConfig(Frozen):
    """How far the agent may go on its own; `recommend` (people approve everything) is the default."""

    autonomy: Literal["observe", "recommend", "supervised"] = "recommend"
    suggestion_ttl_s: float = Field(4 * 3600.0, gt=0)
    rate_limit_per_hour: int = Field(20, ge=0, description="suggestions per playbook per hour")
    rate_limits: dict[str, int] = Field(default_factory=dict, description="per-playbook overrides")
    defaults: dict[str, dict[str, ParamValue]] = Field(
        default_factory=dict, description="per playbook: input -> value pinned by the site (devices)")
    approvers: dict[Literal["low", "medium", "high"], int] = Field(
        default_factory=dict, description="distinct approvers per risk; may raise, never lower, the minimum")
    system_identity: str = Field("watchstander:triage", pattern=r"^watchstander:[a-z][a-z0-9_-]{0,31}$")
    people: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="person -> every identity they act under (uid:N, console:PRINCIPAL): one person, one approval")

    @field_validator("people")
    @classmethod
    def _people(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        owner: dict[str, str] = {}
        for name, identities in v.items():
            if not _PERSON.fullmatch(name):
                raise ValueError(f"not a person's name (letters, digits, . _ -): {name!r}")
            for identity in identities:
                if not _IDENTITY.fullmatch(identity):
                    raise ValueError(f"{name}: {identity[:80]!r} is not uid:N or console:PRINCIPAL")
                key = identity.lower() if identity.startswith("console:") else identity
                if key in owner:
                    raise ValueError(f"{identity!r} is listed for both {owner[key]} and {name}")
                owner[key] = name
        return v

    @field_validator("rate_limits")
    @classmethod
    def _limits(cls, v: dict[str, int]) -> dict[str, int]:
        for key, count in v.items():
            if not _PLAYBOOK_ID.fullmatch(key):
                raise ValueError(f"not a playbook id: {key!r}")
            if count < 0:
                raise ValueError(f"{key}: a rate limit cannot be negative")
        return v

    @field_validator("defaults")
    @classmethod
    def _defaults(cls, v: dict[str, dict[str, ParamValue]]) -> dict[str, dict[str, ParamValue]]:
        for playbook, params in v.items():
            if not _PLAYBOOK_ID.fullmatch(playbook):
                raise ValueError(f"not a playbook id: {playbook!r}")
            for name, value in params.items():
                if not _INPUT_NAME.fullmatch(name):
                    raise ValueError(f"{playbook}: not an input name: {name!r}")
                items = value if isinstance(value, list) else [value]
                for item in items:
                    if isinstance(item, bool) or not _SAFE.fullmatch(str(item)):
                        raise ValueError(f"{playbook}.{name}: {item!r} has characters no input type accepts")
        return v

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, v: dict[str, int]) -> dict[str, int]:
        for risk, count in v.items():
            if count < MIN_APPROVERS[risk]:
                raise ValueError(f"{risk}: at least {MIN_APPROVERS[risk]} approver(s) are required")
            if count > 5:
                raise ValueError(f"{risk}: more than 5 approvers cannot be collected in practice")
        return v

    def rate_limit(self, playbook_id: str) -> int:
        """Suggestions of this playbook allowed per hour."""
        return self.rate_limits.get(playbook_id, self.rate_limit_per_hour)

    def approvers_for(self, risk: str) -> int:
        """Distinct approvers a suggestion of a playbook with this risk needs (2 for high)."""
        floor = MIN_APPROVERS.get(risk, 2)  # an unknown risk is treated as high
        # Read-only lookup by any string: a risk that is not one of the Literal keys just misses.
        configured = cast("dict[str, int]", self.approvers)
        return max(floor, configured.get(risk, floor))
