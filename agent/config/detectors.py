"""[detectors.*]: thresholds and windows, one section per detector."""

from __future__ import annotations

from pydantic import Field, field_validator

from .base import Frozen


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
