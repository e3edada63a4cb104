"""The whole configuration model: every section, validated once into frozen models.

Every section has defaults, so the agent runs with no file at all. Sub-configs are handed to
constructors; there is no global config object and nothing reads the environment at import time.
Reading the files is `load.py`'s job.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from watchstander.guidance.config import GuidanceConfig

from .audit import AuditConfig
from .base import Frozen
from .control import ControlConfig
from .detectors import DetectorsConfig
from .devices import Device, unique_devices
from .metrics import MetricsConfig
from .policy import PolicyConfig
from .runner import NotifyConfig, RunnerConfig
from .sources import SourcesConfig
from .triage import TriageConfig


class StoreConfig(Frozen):
    """Where incidents, suggestions and tracking state live (an SQLAlchemy URL)."""

    url: str | None = Field(default=None, description="SQLAlchemy URL; default depends on the user")

    def resolved_url(self, env: Mapping[str, str] | None = None) -> str:
        """The URL to open: the configured one, or the per-user default location."""
        if self.url:
            return self.url
        return f"sqlite:///{default_state_dir(env) / 'watchstander.db'}"


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """/var/lib/watchstander as root, $XDG_STATE_HOME/watchstander (or ~/.local/state/...) otherwise."""
    env = os.environ if env is None else env
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "STATE_DIRECTORY" not in env:
        return Path("/var/lib/watchstander")
    if "STATE_DIRECTORY" in env:  # set by systemd's StateDirectory=
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "state")
    return Path(base) / "watchstander"


Criticality = Literal["low", "medium", "high", "critical"]


class Asset(Frozen):
    """A network or host the site cares about, and whether it must never be blocked or shut down."""

    cidr: str
    name: str
    criticality: Criticality = "medium"
    protected: bool = False

    @field_validator("cidr")
    @classmethod
    def _valid_cidr(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_network(v, strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP network: {v!r}") from exc


class CorrelationConfig(Frozen):
    """Findings about the same entity within `window_s` of each other form one incident."""

    # Six hours: a guessing campaign that pauses for a lunch break is still one campaign.
    window_s: float = Field(21600.0, gt=0)


class PlaybooksConfig(Frozen):
    """Folders of site playbooks, in addition to the shipped library."""

    dirs: tuple[Path, ...] = ()


class LoggingConfig(Frozen):
    """Log level for the journal (stderr)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class AgentConfig(Frozen):
    """The whole validated configuration."""

    store: StoreConfig = StoreConfig()
    sources: SourcesConfig = SourcesConfig()
    logging: LoggingConfig = LoggingConfig()
    assets: tuple[Asset, ...] = ()
    detectors: DetectorsConfig = DetectorsConfig()
    correlation: CorrelationConfig = CorrelationConfig()
    triage: TriageConfig = TriageConfig()
    playbooks: PlaybooksConfig = PlaybooksConfig()
    policy: PolicyConfig = PolicyConfig()
    control: ControlConfig = ControlConfig()
    guidance: GuidanceConfig = GuidanceConfig()
    audit: AuditConfig = AuditConfig()
    devices: tuple[Device, ...] = ()
    runner: RunnerConfig = RunnerConfig()
    notify: NotifyConfig = NotifyConfig()
    metrics: MetricsConfig = MetricsConfig()

    @field_validator("devices")
    @classmethod
    def _unique_devices(cls, v: tuple[Device, ...]) -> tuple[Device, ...]:
        return unique_devices(v)

    @model_validator(mode="after")
    def _unique_asset_names(self) -> AgentConfig:
        names = [a.name for a in self.assets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate asset names: {', '.join(dupes)}")
        if self.runner.alert_webhook and self.runner.alert_webhook not in self.notify.webhooks:
            raise ValueError(f"runner.alert_webhook names no webhook in [notify.webhooks]: {self.runner.alert_webhook!r}")
        return self
