"""[sources]: what the daemon listens to, follows, polls and collects.

Each kind of intake has its own small section model in its own module (syslog intake, SNMP,
SSH collection, live capture); this one composes them under `[sources]`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Frozen, HostPort
from .capture import CaptureSource
from .netflow import FlowIntake
from .snmp_sources import SnmpSources
from .ssh_collection import SshCollection
from .syslog_intake import TcpIntake, TlsIntake, UdpIntake


class SourcesConfig(Frozen):
    """What the daemon listens to and follows: syslog over UDP/TCP, and files it tails."""

    syslog_udp: tuple[HostPort, ...] = Field(("127.0.0.1:5514",), description="HOST:PORT to receive syslog on")
    syslog_tcp: tuple[HostPort, ...] = ()
    syslog_relp: tuple[HostPort, ...] = Field((), description="HOST:PORT to receive syslog over RELP on "
                                                              "(rsyslog omrelp: acknowledged, resent after a break)")
    files: tuple[Path, ...] = Field((), description="syslog or Suricata EVE files to follow (format sniffed)")
    flush_s: float = Field(10.0, gt=0, description="how often findings are correlated, triaged and stored")
    max_message: int = Field(64 * 1024, ge=512, le=1024 * 1024)
    snmp_traps: tuple[HostPort, ...] = Field((), description="HOST:PORT to receive SNMP traps and informs on")
    capture: tuple[CaptureSource, ...] = Field((), description="[[sources.capture]]: live packet capture")
    netflow: tuple[HostPort, ...] = Field((), description="HOST:PORT to receive NetFlow v5/v9 and IPFIX on")
    udp: UdpIntake = UdpIntake()
    tcp: TcpIntake = TcpIntake()
    tls: TlsIntake = TlsIntake()
    snmp: SnmpSources = SnmpSources()
    ssh: SshCollection = SshCollection()
    flow: FlowIntake = FlowIntake()
