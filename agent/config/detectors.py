"""[detectors.*]: thresholds and windows, one section per detector."""

from __future__ import annotations

from typing import Literal

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


class DriftConfig(Frozen):
    """Configuration drift against the approved baseline (SSH collection)."""

    max_diff: int = Field(16 * 1024, ge=256, le=1024 * 1024, description="characters of the diff kept as evidence")
    severity: Literal["low", "medium", "high", "critical"] = Field("high", description="of a drift finding")


class SnmpAuthConfig(Frozen):
    """[detectors.snmp_auth]: how many SNMP authentication failures within the window are guessing."""

    window_s: float = Field(300.0, gt=0)
    failures: int = Field(5, ge=2, description="authenticationFailure traps from one agent, or unknown-community "
                                                "datagrams from one sender, within the window")


class LinkFlapConfig(Frozen):
    """[detectors.linkflap]: link state changes of one interface within the window that are flapping."""

    window_s: float = Field(600.0, gt=0)
    transitions: int = Field(6, ge=2, description="linkDown + linkUp traps for one interface (6: three flaps)")


class RebootConfig(Frozen):
    """[detectors.reboot]: one finding per device and reboot; a trap and a poll within the window are one."""

    window_s: float = Field(900.0, gt=0)
    warm_start: bool = Field(True, description="report warmStart (agent re-initialised) as well as coldStart")


class IfAnomalyConfig(Frozen):
    """[detectors.ifanomaly]: the baseline per interface and what counts as far outside it."""

    history: int = Field(30, ge=3, le=1000, description="samples per interface kept for the baseline")
    min_samples: int = Field(5, ge=2, description="samples needed before a baseline anomaly is reported")
    mad_factor: float = Field(6.0, gt=0, description="scaled MADs above the median that are anomalous")
    saturation: float = Field(0.95, gt=0, le=1, description="utilisation reported whatever the baseline")
    min_utilisation: float = Field(0.3, ge=0, le=1,
                                   description="a traffic spike below this share of ifHighSpeed is not reported")
    min_bps: float = Field(1e6, ge=0, description="a traffic spike below this (bit/s) is not reported "
                                                  "(interfaces without ifHighSpeed)")
    min_error_rate: float = Field(1.0, gt=0, description="errors per second below which nothing is reported")
    window_s: float = Field(3600.0, gt=0, description="an anomaly seen again within this updates its finding")


DETECTOR_IDS = ("bruteforce", "portscan", "sweep", "arpspoof", "dnstunnel", "synflood", "ids", "drift",
                "snmp_auth", "linkflap", "reboot", "ifanomaly")


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
    drift: DriftConfig = DriftConfig()
    snmp_auth: SnmpAuthConfig = SnmpAuthConfig()
    linkflap: LinkFlapConfig = LinkFlapConfig()
    reboot: RebootConfig = RebootConfig()
    ifanomaly: IfAnomalyConfig = IfAnomalyConfig()
