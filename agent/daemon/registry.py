"""Every kind of source the daemon can run: a plain table keyed by dotted name, in start-up order."""

from __future__ import annotations

from .follow import followed_files
from .sources import SourceFactory
from .syslog import tcp_sources, udp_sources

SOURCE_KINDS: dict[str, SourceFactory] = {
    "syslog.udp": udp_sources,
    "syslog.tcp": tcp_sources,
    "file.follow": followed_files,
}
