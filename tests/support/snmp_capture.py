"""Packet events from a pcap with SNMP decoded by a second route, to check the packet reader against.

This attaches `attrs={"snmp": snmp_attrs(payload)}` to the udp/161-162 events of a capture, reading
each record's UDP payload with scapy (the record number in the event's ref says which record it came
from); the packet reader's own decoding must give the same.
"""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6  # noqa: F401  (registers IPv6 with Ether so UDP is found)
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader

from watchstander.connectors.events import Event
from watchstander.connectors.packets import read_packets
from watchstander.connectors.snmp_packets import SNMP_PORTS, snmp_attrs


def snmp_payloads(path: Path) -> dict[int, bytes]:
    """Record number (from 1) -> UDP payload, for every udp/161-162 record of the capture."""
    out: dict[int, bytes] = {}
    with RawPcapReader(str(path)) as reader:  # type: ignore[no-untyped-call]
        for n, (data, _meta) in enumerate(reader, start=1):
            frame = Ether(data)
            udp = frame.getlayer(UDP)
            if udp is not None and (udp.sport in SNMP_PORTS or udp.dport in SNMP_PORTS):
                out[n] = bytes(udp.payload)
    return out


def snmp_events(path: Path) -> list[Event]:
    """The capture's packet events, SNMP ones carrying attrs["snmp"] when the payload decodes."""
    payloads = snmp_payloads(path)
    events = list(read_packets(path))
    for ev in events:
        if ev.proto != "udp" or ev.ref is None:
            continue
        payload = payloads.get(int(ev.ref.rpartition("#")[2]))
        attrs = snmp_attrs(payload) if payload is not None else None
        if attrs is not None:
            ev.attrs = {**(ev.attrs or {}), "snmp": attrs}
    return events
