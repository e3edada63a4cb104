"""One table from a sniffed format to its decoders: whole files (replay) and growing files (the follower).

A new file format is one reader module, one sniffing rule in `sniff.py` and one row here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from .dnsnames import read_dns_names
from .events import Event
from .ids import EveLines, read_eve
from .netflow_pcap import NETFLOW, read_flow_capture
from .packets import read_packets
from .skips import SkipCounter
from .sniff import DNS_NAMES, EVE, PCAP, SYSLOG, sniff
from .syslog import SyslogSource, read_syslog
from .zeek import ZEEK, ZeekLines, read_zeek

Now = Callable[[], datetime]


class FileReader(Protocol):
    """Reads a whole file of one format into Events, counting what it skips."""

    def __call__(self, path: Path, now: Now, skips: SkipCounter, source: str | None = None) -> Iterable[Event]: ...


class LineDecoder(Protocol):
    """Decodes newline-separated records of one format as they arrive."""

    skips: SkipCounter

    def events(self, lines: Iterable[bytes], first_line: int = 1) -> Iterator[Event]: ...


LineDecoderFactory = Callable[[str, Now, SkipCounter], LineDecoder]


@dataclass(frozen=True, slots=True)
class Format:
    """How to read one sniffed format: as a whole file, and (when line-based) as lines."""

    name: str
    read_file: FileReader
    lines: LineDecoderFactory | None  # None: not line-based, cannot be followed


def _pcap(path: Path, now: Now, skips: SkipCounter, source: str | None = None) -> Iterable[Event]:
    return read_packets(path, source=source, skips=skips, now=now)


def _syslog(path: Path, now: Now, skips: SkipCounter, source: str | None = None) -> Iterable[Event]:
    return read_syslog(path, now, source=source, skips=skips)


def _eve(path: Path, now: Now, skips: SkipCounter, source: str | None = None) -> Iterable[Event]:
    return read_eve(path, source=source, skips=skips, now=now)


def _dns_names(path: Path, now: Now, skips: SkipCounter, source: str | None = None) -> Iterable[Event]:
    # The format has no times: the names are taken as seen when read.
    return read_dns_names(path, source=source, skips=skips, time=now().timestamp())


FORMATS: dict[str, Format] = {
    PCAP: Format(PCAP, _pcap, None),
    SYSLOG: Format(SYSLOG, _syslog, lambda source, now, skips: SyslogSource(source, now, skips)),
    EVE: Format(EVE, _eve, lambda source, now, skips: EveLines(source, skips, now)),
    DNS_NAMES: Format(DNS_NAMES, _dns_names, None),
    ZEEK: Format(ZEEK, lambda path, now, skips, source=None: read_zeek(path, source, skips, now),
                 lambda source, now, skips: ZeekLines(source, skips, now)),
    NETFLOW: Format(NETFLOW, lambda path, now, skips, source=None: read_flow_capture(path, now, skips, source),
                    None),
}


def open_file(path: Path, now: Now, skips: SkipCounter) -> tuple[str, Iterable[Event]]:
    """Sniff a file's format and return (format name, its events)."""
    fmt = sniff(path)
    return fmt, FORMATS[fmt].read_file(path, now, skips)
