"""Unidirectional flow records from a pcap, as a NetFlow/IPFIX exporter would make them, as Events.

Independent of the project's packet decoder (scapy dissects every frame), so a test can compare the
packet path and the flow path on the same recorded traffic. One record per (src, dst, sport, dport,
protocol) with no timeout: the OR of TCP flags, packets, IP bytes, duration; ICMP carries
type*256+code in dport, as NetFlow does. The record's time is its first packet's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.sctp import SCTP
from scapy.utils import rdpcap

from watchstander.connectors.events import NETWORK, Event

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 132: "sctp"}


def flow_events(path: Path, source: str = "flows") -> list[Event]:
    """Every flow in the capture as one network_activity Event with attrs["flow"] = True."""
    flows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for pkt in rdpcap(str(path)):
        if IP not in pkt:
            continue
        ip = pkt[IP]
        if ip.frag:
            continue
        sport = dport = 0
        flags = 0
        if TCP in ip:
            sport, dport, flags = ip[TCP].sport, ip[TCP].dport, int(ip[TCP].flags)
        elif UDP in ip:
            sport, dport = ip[UDP].sport, ip[UDP].dport
        elif SCTP in ip:
            sport, dport = ip[SCTP].sport, ip[SCTP].dport
        elif ICMP in ip:
            dport = ip[ICMP].type * 256 + ip[ICMP].code
        key = (ip.src, ip.dst, sport, dport, ip.proto)
        t = float(pkt.time)
        rec = flows.get(key)
        if rec is None:
            rec = flows[key] = {"first": t, "last": t, "flags": 0, "packets": 0, "bytes": 0}
        rec["last"] = t
        rec["flags"] |= flags
        rec["packets"] += 1
        rec["bytes"] += int(ip.len or len(ip))
    out = []
    for n, ((src, dst, sport, dport, proto), rec) in enumerate(sorted(flows.items(), key=lambda kv: kv[1]["first"])):
        out.append(Event(rec["first"], source, NETWORK, src, dst, sport, dport, PROTO_NAMES.get(proto, str(proto)),
                         rec["flags"], attrs={"flow": True, "packets": rec["packets"], "bytes": rec["bytes"],
                                              "duration": rec["last"] - rec["first"]},
                         ref=f"{path.name}:flow#{n + 1}"))
    return out
