"""Configuration: /etc/watchstander/watchstander.toml then conf.d/*.toml, validated once into frozen models.

Every section has defaults, so the agent runs with no file at all. Sub-configs are handed to
constructors; there is no global config object and nothing reads the environment at import time.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from watchstander.guidance.config import GuidanceConfig

from .control.config import ControlConfig
from .errors import ConfigError
from .policy.config import PolicyConfig
from .triage.config import TriageConfig

DEFAULT_CONFIG_PATH = Path("/etc/watchstander/watchstander.toml")


class Frozen(BaseModel):
    """Base for config models: immutable, and unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


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


class BruteForceConfig(Frozen):
    """Password guessing: failed logins (logs, FTP replies) and short SSH connections (packets)."""

    window_s: float = Field(600.0, gt=0)
    failures: int = Field(10, ge=2, description="failed logins from one source within the window")
    ssh_connections: int = Field(8, ge=2, description="new SSH connections from one source to one server")
    ssh_window_s: float = Field(120.0, gt=0)
    ssh_ports: tuple[int, ...] = (22,)


class PortScanConfig(Frozen):
    """Vertical (many ports on one host) and horizontal (one port on many hosts) scans."""

    window_s: float = Field(300.0, gt=0)
    vertical_ports: int = Field(30, ge=2)
    horizontal_hosts: int = Field(64, ge=2)


class SweepConfig(Frozen):
    """ICMP echo and ARP request sweeps across many addresses."""

    window_s: float = Field(300.0, gt=0)
    hosts: int = Field(32, ge=2)


class ArpSpoofConfig(Frozen):
    """ARP cache poisoning: conflicting bindings and unsolicited unicast replies."""

    window_s: float = Field(3600.0, gt=0)
    unsolicited_replies: int = Field(3, ge=1, description="repeated unsolicited replies that alone raise a finding")


class DnsTunnelConfig(Frozen):
    """DNS tunnelling: many unique, long or high-entropy names under one domain, or unusual types."""

    window_s: float = Field(3600.0, gt=0)
    unique_names: int = Field(10, ge=2)
    min_avg_label_len: float = Field(20.0, gt=0)
    min_entropy: float = Field(3.2, gt=0)
    unusual_type_ratio: float = Field(0.5, gt=0, le=1)
    long_label_len: int = Field(50, ge=10, le=255, description="a label this long carries encoded data")
    long_names: int = Field(3, ge=1, description="unique names with such labels that alone raise a finding")
    max_domains_tracked: int = Field(50_000, ge=100)


class SynFloodConfig(Frozen):
    """SYN floods against one service."""

    window_s: float = Field(10.0, gt=0)
    syns: int = Field(1000, ge=10, description="SYNs to one address and port within the window")
    spoofed_sources: int = Field(100, ge=2, description="distinct sources beyond which the source is called spoofed")


class IdsConfig(Frozen):
    """IDS alerts passed through as findings, aggregated per signature, source and destination."""

    window_s: float = Field(3600.0, gt=0)
    min_severity: int = Field(3, ge=1, le=4, description="Suricata severity (1 highest) at or above which alerts pass")


DETECTOR_IDS = ("bruteforce", "portscan", "sweep", "arpspoof", "dnstunnel", "synflood", "ids")


class DetectorsConfig(Frozen):
    """Per-detector thresholds; `disabled` names detectors to switch off."""

    disabled: tuple[str, ...] = ()

    @field_validator("disabled")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - set(DETECTOR_IDS))
        if unknown:
            raise ValueError(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(DETECTOR_IDS)}")
        return v

    bruteforce: BruteForceConfig = BruteForceConfig()
    portscan: PortScanConfig = PortScanConfig()
    sweep: SweepConfig = SweepConfig()
    arpspoof: ArpSpoofConfig = ArpSpoofConfig()
    dnstunnel: DnsTunnelConfig = DnsTunnelConfig()
    synflood: SynFloodConfig = SynFloodConfig()
    ids: IdsConfig = IdsConfig()


class CorrelationConfig(Frozen):
    """Findings about the same entity within `window_s` of each other form one incident."""

    # Six hours: a guessing campaign that pauses for a lunch break is still one campaign.
    window_s: float = Field(21600.0, gt=0)


class PlaybooksConfig(Frozen):
    """Folders of site playbooks, in addition to the shipped library."""

    dirs: tuple[Path, ...] = ()


class SourcesConfig(Frozen):
    """What the daemon listens to and follows: syslog over UDP/TCP, and files it tails."""

    syslog_udp: tuple[str, ...] = Field(("127.0.0.1:5514",), description="HOST:PORT to receive syslog on")
    syslog_tcp: tuple[str, ...] = ()
    files: tuple[Path, ...] = Field((), description="syslog or Suricata EVE files to follow (format sniffed)")
    flush_s: float = Field(10.0, gt=0, description="how often findings are correlated, triaged and stored")
    max_message: int = Field(64 * 1024, ge=512, le=1024 * 1024)

    @field_validator("syslog_udp", "syslog_tcp")
    @classmethod
    def _host_port(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ValueError(f"expected HOST:PORT, got {item!r}")
        return v


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

    @model_validator(mode="after")
    def _unique_asset_names(self) -> AgentConfig:
        names = [a.name for a in self.assets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate asset names: {', '.join(dupes)}")
        return self


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list) and key == "assets":
            out[key] = out[key] + list(value)  # drop-ins add assets rather than replace them
        else:
            out[key] = value
    return out


def config_files(path: Path | None) -> list[Path]:
    """The files that make up the configuration, in the order they are applied."""
    main = path or DEFAULT_CONFIG_PATH
    files = [main] if main.exists() else []
    dropins = main.parent / "conf.d"
    if dropins.is_dir():
        files.extend(sorted(p for p in dropins.glob("*.toml") if p.is_file()))
    return files


def load_config(path: str | Path | None = None) -> AgentConfig:
    """Read, merge and validate the configuration; raises ConfigError naming every bad key."""
    explicit = Path(path) if path is not None else None
    if explicit is not None and not explicit.exists():
        raise ConfigError(f"config file not found: {explicit}", [("--config", f"{explicit} does not exist")])
    raw: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for file in config_files(explicit):
        try:
            with open(file, "rb") as fh:
                raw = _merge(raw, tomllib.load(fh))
        except tomllib.TOMLDecodeError as exc:
            problems.append((str(file), f"TOML syntax: {exc}"))
        except OSError as exc:
            problems.append((str(file), f"cannot read: {exc.strerror}"))
    if problems:
        raise ConfigError("configuration files could not be read", problems)
    return validate_config(raw)


def validate_config(raw: Mapping[str, Any]) -> AgentConfig:
    """Validate a merged raw mapping into an AgentConfig."""
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [(_key_path(err["loc"]), err["msg"]) for err in exc.errors()]
        raise ConfigError(f"{len(problems)} configuration error(s)", problems) from exc


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part or any(c in part for c in '.[]" \\'):
            out += f"[{json.dumps(part, ensure_ascii=False)}]"  # a key that would read as a path is quoted
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def masked_dump(cfg: AgentConfig) -> dict[str, Any]:
    """The effective config as plain data with every secret shown as '**********'."""
    return cfg.model_dump(mode="json")  # SecretStr serialises masked in JSON mode
