"""Every kind of source the daemon can run: a plain table keyed by dotted name, in start-up order."""

from __future__ import annotations

from .capture import capture_sources
from .follow import followed_files
from .netflow import netflow_sources
from .relp import relp_sources
from .snmp_poll import snmp_poll_sources
from .snmp_traps import snmp_trap_sources
from .sources import SourceFactory
from .ssh_collect import ssh_collect_sources
from .syslog import tcp_sources, tls_sources, udp_sources

SOURCE_KINDS: dict[str, SourceFactory] = {
    "syslog.udp": udp_sources,
    "syslog.tcp": tcp_sources,
    "syslog.tls": tls_sources,
    "syslog.relp": relp_sources,
    "file.follow": followed_files,
    "snmp.traps": snmp_trap_sources,
    "snmp.poll": snmp_poll_sources,
    "ssh.collect": ssh_collect_sources,
    "capture.live": capture_sources,
    "netflow.udp": netflow_sources,
}
