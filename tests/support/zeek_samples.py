"""Zeek's own btest baselines with their masked times put back from the capture Zeek read.

Zeek's test suite writes `XXXXXXXXXX.XXXXXX` for every time in its baseline logs (btest canonifies
them). The captures those logs were made from are in ../shared/telemetry/pcaps, so each row's time
can be recovered: a connection's `ts` is the time of its first packet (matched on the originator and
responder address and port); a row without a connection (a notice about a host) gets the time of the
capture's last packet, when Zeek raised it at the latest.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from watchstander.connectors.packets import read_packets

MASK = b"XXXXXXXXXX.XXXXXX"


@cache
def first_packet_times(pcap: Path) -> tuple[dict[tuple[str, int, str, int], float], float]:
    """(first time of each (src, sport, dst, dport) seen in `pcap`, time of its last packet)."""
    first: dict[tuple[str, int, str, int], float] = {}
    last = 0.0
    for ev in read_packets(pcap):
        last = max(last, ev.time)
        if ev.src and ev.dst and ev.sport is not None and ev.dport is not None:
            first.setdefault((ev.src, ev.sport, ev.dst, ev.dport), ev.time)
    return first, last


def unmask(log: Path, pcap: Path, out: Path) -> Path:
    """Write `log` to `out` with each masked time replaced by the capture's time for that row."""
    first, last = first_packet_times(pcap)
    fields: list[str] = []
    lines = []
    for line in log.read_bytes().split(b"\n"):
        if line.startswith(b"#fields\t"):
            fields = line.decode().split("\t")[1:]
        elif line and not line.startswith(b"#") and line.startswith(MASK):
            row = line.split(b"\t")
            values = dict(zip(fields, (v.decode() for v in row), strict=True))
            when = last
            if values.get("id.orig_h", "-") != "-":
                key = (values["id.orig_h"], int(values["id.orig_p"]), values["id.resp_h"], int(values["id.resp_p"]))
                when = first[key]
            line = f"{when:.6f}".encode() + line[len(MASK):]
        lines.append(line)
    out.write_bytes(b"\n".join(lines))
    return out


def conn_rows_from_packets(pcap: Path) -> list[dict[str, object]]:
    """conn.log rows for the TCP connections in `pcap`, with history and conn_state as Zeek derives them.

    For captures Zeek's logs are not shared for: the originator is the side of the first SYN; the
    history holds each side's first S/H/A/F/R (upper case: originator); the state follows Zeek's
    table for the cases a scan makes (S0, REJ, RSTOS0, RSTO, RSTR, SF, S1, OTH).
    """
    conns: dict[tuple[str, int, str, int], dict[str, object]] = {}
    for ev in read_packets(pcap):
        if ev.proto != "tcp" or not (ev.src and ev.dst and ev.sport is not None and ev.dport is not None):
            continue
        key, back = (ev.src, ev.sport, ev.dst, ev.dport), (ev.dst, ev.dport, ev.src, ev.sport)
        if key not in conns and back not in conns:
            conns[key] = {"ts": ev.time, "history": "", "orig_pkts": 0, "resp_pkts": 0, "last": ev.time}
        row = conns[key] if key in conns else conns[back]
        orig = key in conns
        flags = ev.flags
        # Zeek's letters: S a SYN, H a SYN-ACK, R a reset, F a FIN, A a pure ACK (a reset's ACK bit is no A).
        letters = ("H" if flags & 0x12 == 0x12 else "S" if flags & 0x02 else "R" if flags & 0x04
                   else "F" if flags & 0x01 else "A" if flags == 0x10 else "")
        for c in letters:
            c = c if orig else c.lower()
            if c not in str(row["history"]):
                row["history"] = f"{row['history']}{c}"
        row["orig_pkts" if orig else "resp_pkts"] = int(str(row["orig_pkts" if orig else "resp_pkts"])) + 1
        row["last"] = ev.time
    rows = []
    for i, ((src, sport, dst, dport), row) in enumerate(conns.items()):
        h = str(row["history"])
        state = ("REJ" if "r" in h and "h" not in h and h.startswith("S") else "RSTOS0" if "R" in h and "h" not in h
                 else "RSTO" if "R" in h else "RSTR" if "r" in h
                 else "SF" if "F" in h and "f" in h else "S1" if "h" in h else "S0" if h.startswith("S") else "OTH")
        rows.append({"ts": row["ts"], "uid": f"C{i}", "id.orig_h": src, "id.orig_p": sport, "id.resp_h": dst,
                     "id.resp_p": dport, "proto": "tcp", "duration": float(row["last"]) - float(row["ts"]),  # type: ignore[arg-type]
                     "orig_bytes": 0, "resp_bytes": 0, "conn_state": state, "history": h,
                     "orig_pkts": row["orig_pkts"], "orig_ip_bytes": 0, "resp_pkts": row["resp_pkts"],
                     "resp_ip_bytes": 0})
    return rows
