"""The in-place fast path of the pcap reader yields exactly what the full decoder yields."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.utils import RawPcapReader

from watchstander.agent.demo.data import write_bench_pcap, write_demo_telemetry
from watchstander.connectors.packets import PacketDecoder, read_packets
from watchstander.connectors.skips import SkipCounter

pytestmark = pytest.mark.integration


def slow_path(path: Path) -> list[dict[str, object]]:
    """Every frame through scapy's reader and the general decoder."""
    import logging

    decoder = PacketDecoder(f"pcap:{path.name}", SkipCounter(logging.getLogger("t"), "t"))
    out = []
    with RawPcapReader(str(path)) as reader:
        scale = 1e-9 if getattr(reader, "nano", False) else 1e-6
        for n, (data, meta) in enumerate(reader, 1):
            out += [e.as_dict() for e in decoder.decode(data, reader.linktype, meta[0] + meta[1] * scale,
                                                         f"{path.name}#{n}")]
    return out


def test_generated_captures(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    pcaps = [write_demo_telemetry(tmp_path / "demo", clock())[0], tmp_path / "bench.pcap"]
    write_bench_pcap(pcaps[1], 5000)
    for pcap in pcaps:
        assert [e.as_dict() for e in read_packets(pcap)] == slow_path(pcap)


@pytest.mark.shared
def test_shared_captures(shared_telemetry: Path) -> None:
    pcaps = [p for p in sorted((shared_telemetry / "pcaps").glob("*.pcap"))
             if p.stat().st_size < 200_000] + sorted((shared_telemetry / "snmp" / "pcaps").glob("*.pcap"))
    assert pcaps
    for pcap in pcaps:
        assert [e.as_dict() for e in read_packets(pcap)] == slow_path(pcap), pcap.name
