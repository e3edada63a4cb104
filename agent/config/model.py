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
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from watchstander.guidance.config import GuidanceConfig

from .audit import AuditConfig
from .base import Frozen
from .console import ConsoleConfig
from .control import ControlConfig
from .detectors import DetectorsConfig
from .devices import Device, unique_devices
from .identity import IdentityConfig
from .metrics import MetricsConfig
from .policy import PolicyConfig
from .runner import NotifyConfig, RunnerConfig
from .sources import SourcesConfig
from .triage import TriageConfig


class StoreConfig(Frozen):
    """Where incidents, suggestions and tracking state live (an SQLAlchemy URL)."""

    url: str | None = Field(default=None, description="SQLAlchemy URL; default depends on the user")
    spool: Path | None = Field(default=None, description="the local findings spool kept while the store is "
                                                         "unreachable; default beside a SQLite store, else "
                                                         "<state dir>/findings-spool.db")
    spool_max_findings: int = Field(100_000, ge=1, le=100_000_000,
                                    description="findings the spool holds; beyond, the oldest are dropped (counted)")
    spool_max_mb: float = Field(256.0, gt=0, le=1_048_576,
                                description="megabytes of findings the spool holds; beyond, the oldest are dropped")

    @field_validator("spool")
    @classmethod
    def _spool_is_a_file_path(cls, v: Path | None) -> Path | None:
        if v is not None and (str(v) in ("", ".") or "\x00" in str(v)):
            raise ValueError(f"not a file path: {str(v)!r}")
        return v

    def resolved_url(self, env: Mapping[str, str] | None = None) -> str:
        """The URL to open: the configured one, or the per-user default location."""
        if self.url:
            return self.url
        return f"sqlite:///{default_state_dir(env) / 'watchstander.db'}"

    def resolved_spool(self, env: Mapping[str, str] | None = None) -> Path:
        """The spool file: the configured one; beside a SQLite store file; else in the state directory."""
        if self.spool is not None:
            return self.spool
        try:
            parsed = make_url(self.resolved_url(env))
        except ArgumentError:  # reported where the store is opened; the spool needs a place meanwhile
            parsed = None
        if parsed is not None and parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:" and not database.startswith("file:"):
                db = Path(database)
                return db.with_name(f"{db.stem}-findings-spool.db")
        return default_state_dir(env) / "findings-spool.db"

    @property
    def spool_max_bytes(self) -> int:
        """`spool_max_mb` in bytes."""
        return max(1, int(self.spool_max_mb * 1024 * 1024))


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
    scanner: bool = Field(False, description="the site's own scanner: its scans and sweeps are expected, "
                                             "counted but not reported")

    @field_validator("cidr")
    @classmethod
    def _valid_cidr(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_network(v, strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP network: {v!r}") from exc


SCAN_DETECTORS = ("portscan", "sweep", "scan_distributed")


def scanners_to_detectors(data: Any) -> Any:
    """Hand the networks of `[[assets]] scanner = true` to the scan detectors' `scanners` lists.

    Detectors get only their own section, so the site's scanners are copied there once, before
    validation; networks a section already lists are kept.
    """
    if not isinstance(data, dict):
        return data
    assets = data.get("assets") or ()
    if not isinstance(assets, (list, tuple)):
        return data
    cidrs = []
    for a in assets:
        scanner = a.scanner if isinstance(a, Asset) else isinstance(a, dict) and a.get("scanner") is True
        cidr = a.cidr if isinstance(a, Asset) else a.get("cidr") if isinstance(a, dict) else None
        if scanner and isinstance(cidr, str):
            try:
                cidrs.append(str(ipaddress.ip_network(cidr, strict=False)))
            except ValueError:
                continue  # reported against assets[].cidr, where the mistake is
    if not cidrs:
        return data
    detectors = data.get("detectors", {})
    if isinstance(detectors, DetectorsConfig):
        detectors = detectors.model_dump()
    if not isinstance(detectors, dict):
        return data
    detectors = dict(detectors)
    for name in SCAN_DETECTORS:
        section = detectors.get(name, {})
        if isinstance(section, Frozen):
            section = section.model_dump()
        if not isinstance(section, dict):
            continue
        listed = section.get("scanners") or ()
        if isinstance(listed, (list, tuple)):
            detectors[name] = {**section, "scanners": [*listed, *(c for c in cidrs if c not in listed)]}
    return {**data, "detectors": detectors}


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
    console: ConsoleConfig = ConsoleConfig()
    agent: IdentityConfig = Field(default_factory=IdentityConfig)  # built per load: the default reads the host name

    @field_validator("devices")
    @classmethod
    def _unique_devices(cls, v: tuple[Device, ...]) -> tuple[Device, ...]:
        return unique_devices(v)

    @model_validator(mode="before")
    @classmethod
    def _scanners_to_detectors(cls, data: Any) -> Any:
        return scanners_to_detectors(data)

    @model_validator(mode="after")
    def _unique_asset_names(self) -> AgentConfig:
        names = [a.name for a in self.assets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate asset names: {', '.join(dupes)}")
        if self.runner.alert_webhook and self.runner.alert_webhook not in self.notify.webhooks:
            raise ValueError(f"runner.alert_webhook names no webhook in [notify.webhooks]: {self.runner.alert_webhook!r}")
        return self
