"""[detectors.*]: thresholds and windows, one section per detector."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from .base import Frozen

# RFC 1918 private IPv4 and RFC 4193 unique local IPv6: what "internal" means when a site says nothing.
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


def check_networks(value: tuple[str, ...]) -> tuple[str, ...]:
    """Every entry must be an IP network (CIDR) or address; returns them normalised."""
    out = []
    for item in value:
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise ValueError(f"not an IP network: {item!r}") from exc
    return tuple(out)


def check_destinations(value: tuple[str, ...]) -> tuple[str, ...]:
    """Allow-list entries: `CIDR`, `ADDRESS:PORT`, `[v6]:PORT`, `CIDR:PORT` or `*:PORT`."""
    for item in value:
        host, port = item, None
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") or None
        elif item.count(":") == 1:
            host, port = item.split(":")
        if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError(f"bad port in {item!r}")
        if host != "*":
            check_networks((host,))
    return value


# Lists of networks and allow-list entries, checked and normalised wherever a section holds one.
Networks = Annotated[tuple[str, ...], AfterValidator(check_networks)]
Destinations = Annotated[tuple[str, ...], AfterValidator(check_destinations)]


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
    udp_ports: int = Field(20, ge=2, description="unanswered UDP ports of one host probed by one source")
    protocols: int = Field(8, ge=2, description="distinct uncommon IP protocols one source sent to one host")
    slow_window_s: float = Field(7200.0, gt=0, description="how long a low-and-slow scan is followed")
    slow_ports: int = Field(24, ge=2, description="distinct unanswered ports of one host within slow_window_s")
    slow_max_sources: int = Field(16_384, ge=16, description="(source, target) pairs followed for slow scans; "
                                                             "the oldest half is dropped beyond it")
    scanners: Networks = Field((), description="networks of the site's own scanners (filled from "
                                                      "[[assets]] scanner = true): counted, not reported")


class SweepConfig(Frozen):
    """ICMP echo and ARP request sweeps across many addresses."""

    window_s: float = Field(300.0, gt=0)
    hosts: int = Field(32, ge=2)
    scanners: Networks = Field((), description="networks of the site's own scanners (filled from "
                                                      "[[assets]] scanner = true): counted, not reported")


class ScanDistributedConfig(Frozen):
    """[detectors.scan_distributed]: many sources probing one target's ports, none enough alone."""

    window_s: float = Field(600.0, gt=0)
    ports: int = Field(50, ge=2, description="distinct unanswered ports of one host probed within the window")
    sources: int = Field(5, ge=2, description="distinct sources those probes came from")
    max_targets: int = Field(16_384, ge=16, description="targets followed at once; the oldest half is dropped "
                                                        "beyond it")
    scanners: Networks = Field((), description="networks of the site's own scanners (filled from "
                                                      "[[assets]] scanner = true): their probes are not counted")


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


class BeaconConfig(Frozen):
    """[detectors.beacon]: periodic connections from an internal host to one external destination."""

    internal_networks: Networks = Field(PRIVATE_NETWORKS, description="the site's own address space")
    allow: Destinations = Field((), description="destinations expected to be polled periodically (update, "
                                                   "monitoring, time servers): CIDR, ADDR:PORT or *:PORT")
    allowed_ports: tuple[int, ...] = Field((53, 123), description="destination ports never scored (DNS, NTP)")
    encrypted_ports: tuple[int, ...] = Field((443, 465, 636, 853, 993, 995, 8443),
                                             description="a beacon to these ports also gets T1573")
    min_connections: int = Field(12, ge=4, description="connections (beats) before a pair is scored")
    min_span_s: float = Field(300.0, gt=0, description="first to last beat at least this long")
    min_period_s: float = Field(5.0, gt=0, description="shorter periods are chatty applications, not beacons")
    max_jitter: float = Field(0.15, gt=0, le=1, description="median absolute deviation / period (a +-20 % "
                                                            "uniform jitter gives about 0.1)")
    min_on_period: float = Field(0.7, gt=0, le=1, description="share of intervals within 0.5-1.5 x the median "
                                                              "(the rest are skipped beats and sleeps)")
    merge_s: float = Field(2.0, ge=0, description="connections this close to the previous one are the same beat")
    udp_idle_s: float = Field(5.0, gt=0, description="a UDP packet after this much silence starts a new session")
    ring: int = Field(32, ge=8, le=256, description="connection start times kept per pair")
    max_pairs: int = Field(20_000, ge=100, description="(host, destination) pairs tracked, least recent evicted")


class ExfilConfig(Frozen):
    """[detectors.exfil]: an internal host sending far more out than its own baseline (flows, Zeek)."""

    internal_networks: Networks = Field(PRIVATE_NETWORKS, description="the site's own address space")
    allow: Destinations = Field((), description="destinations expected to receive bulk data (backups, "
                                                   "cloud sync): CIDR, ADDR:PORT or *:PORT")
    window_s: float = Field(3600.0, gt=0, description="bytes out per host are summed over windows this long")
    history: int = Field(24, ge=3, le=1000, description="past windows per host kept for the baseline")
    warmup_windows: int = Field(6, ge=1, description="windows a host must have been watched before it can alert")
    min_bytes: int = Field(100 * 1024 * 1024, ge=0, description="a window below this is never reported")
    factor: float = Field(10.0, gt=1, description="times the median window that is unusual")
    mad_factor: float = Field(8.0, gt=0, description="scaled MADs above the median that are unusual")
    peak_factor: float = Field(1.5, ge=0, description="times the largest window in the history that is unusual "
                                                      "(a nightly backup is part of the baseline; 0: off)")
    max_hosts: int = Field(20_000, ge=100, description="internal hosts tracked, least recent evicted")


class LateralConfig(Frozen):
    """[detectors.lateral]: first use of RDP, SMB, SSH or WinRM by an internal host, after learning."""

    internal_networks: Networks = Field(PRIVATE_NETWORKS, description="the site's own address space")
    learning_s: float = Field(7 * 86400.0, ge=0, description="observed traffic time to learn from before anything "
                                                             "alerts (persisted in the store)")
    learning_gap_s: float = Field(3600.0, gt=0, description="a silence in the traffic counts at most this much "
                                                            "towards learning (a stopped sensor is not learning)")
    admin_hosts: Networks = Field((), description="jump hosts and admin workstations never reported")
    window_s: float = Field(3600.0, gt=0, description="more targets of one new (host, service) join its finding")
    max_pairs: int = Field(200_000, ge=100, description="learned (host, service) pairs held in memory")


class SnmpAbuseConfig(Frozen):
    """[detectors.snmp_abuse]: community guessing, sweeps, walks and SETs by managers not on the list."""

    managers: Networks = Field((), description="addresses or networks of the site's SNMP managers")
    window_s: float = Field(300.0, gt=0)
    guess_names: int = Field(5, ge=2, description="distinct communities or v3 users that failed from one "
                                                  "source against one agent")
    sweep_hosts: int = Field(32, ge=2, description="distinct agents one source sent SNMP requests to")
    sweep_max_answered: float = Field(0.5, ge=0, le=1, description="with no managers configured, a sweep is "
                                                                   "one most agents did not answer")
    walk_requests: int = Field(20, ge=2, description="getnext/getbulk requests to one agent that are a walk "
                                                     "(reported only when managers are configured)")


DETECTOR_IDS = ("bruteforce", "portscan", "sweep", "arpspoof", "dnstunnel", "synflood", "ids", "drift",
                "snmp_auth", "linkflap", "reboot", "ifanomaly",
                "beacon", "exfil", "lateral", "snmp_abuse",
                "scan_distributed")


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
    beacon: BeaconConfig = BeaconConfig()
    exfil: ExfilConfig = ExfilConfig()
    lateral: LateralConfig = LateralConfig()
    snmp_abuse: SnmpAbuseConfig = SnmpAbuseConfig()
    scan_distributed: ScanDistributedConfig = ScanDistributedConfig()
