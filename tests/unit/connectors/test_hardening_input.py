"""Hostile telemetry (issue 13): out-of-range times, lone surrogates and corrupt pcapng never crash or poison."""

from __future__ import annotations

import json
import math
import sqlite3
import struct
from datetime import datetime, timezone
from pathlib import Path

from watchstander.agent.app.replay import replay
from watchstander.agent.app.wiring import App
from watchstander.agent.config.model import AgentConfig
from watchstander.agent.models import iso
from watchstander.agent.store.incidents import IncidentStore
from watchstander.agent.store.schema import open_store
from watchstander.connectors.ids import read_eve
from watchstander.connectors.packets import read_packets
from watchstander.connectors.syslog import SyslogSource, read_syslog

from .conftest import NOW, fixed_clock, new_skips

T0 = int(NOW.timestamp()) - 3600


def frame(sport: int = 40000, dport: int = 8080) -> bytes:
    """An Ethernet/IPv4/UDP frame from 192.0.2.1 to 192.0.2.2."""
    udp = struct.pack("!HHHH", sport, dport, 8, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    return b"\x00\x11\x22\x33\x44\x55" + b"\x66\x77\x88\x99\xaa\xbb" + b"\x08\x00" + ip + udp


def pcapng_blocks(stamps: list[tuple[int, int]]) -> list[bytes]:
    """SHB, IDB (Ethernet, microseconds) and one EPB per (tshigh, tslow), little-endian."""
    def block(btype: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(1, struct.pack("<HHI", 1, 0, 65535))]
    data = frame()
    for high, low in stamps:
        out.append(block(6, struct.pack("<IIIII", 0, high, low, len(data), len(data)) + data))
    return out


def usec(ts: float) -> tuple[int, int]:
    v = int(ts * 1_000_000)
    return v >> 32, v & 0xFFFFFFFF


def test_pcapng_epb_with_flipped_high_timestamp_word_is_skipped_and_counted(tmp_path: Path) -> None:
    good = usec(T0)
    path = tmp_path / "flip.pcapng"
    path.write_bytes(b"".join(pcapng_blocks([good, (good[0] ^ 0x00FF0000, good[1]), good])))
    skips = new_skips()
    events = list(read_packets(path, skips=skips, now=fixed_clock()))
    assert len(events) == 2
    assert all(abs(e.time - T0) < 1 for e in events)
    assert [r for r in skips.counts if "timestamp" in r] and skips.total == 1


def test_pcap_records_from_before_1990_or_far_future_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "old.pcap"
    data = frame()
    recs = b"".join(struct.pack("<IIII", sec, 0, len(data), len(data)) + data
                    for sec in (T0, 12, T0 + 1, 0xFFFFFFF0))
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + recs)
    skips = new_skips()
    events = list(read_packets(path, skips=skips, now=fixed_clock()))
    assert [int(e.time) for e in events] == [T0, T0 + 1]
    assert skips.total == 2


def test_corrupt_pcapng_block_length_is_counted_as_lost(tmp_path: Path) -> None:
    blocks = pcapng_blocks([usec(T0 + i) for i in range(200)])
    bad = bytearray(blocks[2 + 100])
    struct.pack_into("<I", bad, 4, 0x00FFFFF0)  # the 101st packet's length now reaches past the end
    path = tmp_path / "corrupt.pcapng"
    path.write_bytes(b"".join(blocks[:102]) + bytes(bad) + b"".join(blocks[103:]))
    skips = new_skips()
    events = list(read_packets(path, skips=skips, now=fixed_clock()))
    assert len(events) == 100
    lost = [r for r in skips.counts if r.startswith("corrupt pcapng block")]
    assert lost, skips.counts
    assert str(len(bad) * 100) in lost[0]  # everything from the corrupt block on is named as unread


def test_pcapng_bad_trailing_length_is_counted(tmp_path: Path) -> None:
    blocks = pcapng_blocks([usec(T0 + i) for i in range(4)])
    bad = bytearray(blocks[3])
    struct.pack_into("<I", bad, len(bad) - 4, 4)
    path = tmp_path / "tail.pcapng"
    path.write_bytes(b"".join(blocks[:3]) + bytes(bad) + b"".join(blocks[4:]))
    skips = new_skips()
    events = list(read_packets(path, skips=skips, now=fixed_clock()))
    assert len(events) == 1
    assert any(r.startswith("corrupt pcapng block") for r in skips.counts), skips.counts


SYSLOG_ABSURD = [
    b"<34>1 9999-12-31T23:59:59-14:00 bastion sshd 1 - - Failed password for root from 198.51.100.7 port 1 ssh2",
    b"<34>1 0001-01-01T00:00:00+14:00 bastion sshd 1 - - Failed password for root from 198.51.100.7 port 2 ssh2",
    b"<34>1985-01-01T00:00:00Z bastion sshd[1]: Failed password for root from 198.51.100.7 port 3 ssh2",
    b"<34>Jan  1 00:00:00 9999 bastion sshd[1]: Failed password for root from 198.51.100.7 port 4 ssh2",
]


def test_syslog_times_out_of_range_are_clamped_to_receipt_time() -> None:
    skips = new_skips()
    events = list(SyslogSource("udp", fixed_clock(), skips).events(SYSLOG_ABSURD))
    assert len(events) == 4
    assert {e.time for e in events} == {NOW.timestamp()}
    assert all(e.user == "root" for e in events)
    assert sum(n for r, n in skips.repaired.items() if "timestamp" in r) == 4


def test_syslog_file_times_out_of_range_are_clamped(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_bytes(b"\n".join(SYSLOG_ABSURD) + b"\n")
    events = list(read_syslog(path, fixed_clock(), skips=new_skips()))
    assert [e.time for e in events] == [NOW.timestamp()] * 4


def eve_line(timestamp: str, signature: str = "ET TEST", src: str = "203.0.113.9") -> str:
    return json.dumps({"timestamp": timestamp, "event_type": "alert", "src_ip": src, "dest_ip": "10.0.0.5",
                       "src_port": 1, "dest_port": 80, "proto": "TCP",
                       "alert": {"signature": signature, "signature_id": 1, "category": "c", "severity": 1}})


def test_eve_times_out_of_range_are_clamped_to_receipt_time(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    path.write_text("\n".join(eve_line(t) for t in (
        "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2025-03-15T11:00:00+0000")) + "\n")
    skips = new_skips()
    events = list(read_eve(path, skips=skips, now=fixed_clock()))
    assert [e.time for e in events] == [NOW.timestamp(), NOW.timestamp(), NOW.timestamp() - 3600]
    assert sum(n for r, n in skips.repaired.items() if "timestamp" in r) == 2


def test_iso_never_raises() -> None:
    for ts in (1e20, -1e20, math.inf, -math.inf, math.nan, 253402300800.0 + 86400 * 400, -62135596800.0 - 86400):
        text = iso(ts)
        assert isinstance(text, str) and text
    assert iso(0.0) == "1970-01-01T00:00:00+00:00"
    assert iso(None) is None


def test_incident_store_survives_rows_with_absurd_times(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store = open_store(f"sqlite:///{db}")
    try:
        path = tmp_path / "eve.json"
        path.write_text(eve_line("2026-11-27T11:00:00+0000") + "\n")
        clock = lambda: datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
        replay(App(AgentConfig(), store, clock), [path], "test")
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE incidents SET first_seen = ?, last_seen = ?", (-1e300, 1e300))
            conn.execute("UPDATE findings SET first_seen = ?, last_seen = ?", (-1e18, 4e12))
        repo = IncidentStore(store, clock)
        incidents = repo.list()
        assert len(incidents) == 1
        inc = repo.get(incidents[0].id or 0)
        assert inc is not None
        for f in inc.findings.values():
            json.dumps(f.as_dict())
        assert isinstance(iso(inc.first_seen), str) and isinstance(iso(inc.last_seen), str)
    finally:
        store.close()


def test_lone_surrogates_in_eve_become_replacement_characters(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    line = eve_line("2025-03-15T11:00:00+0000", signature="ET \ud800 lone", src="203.0.113.\udfff")
    assert "\\ud800" in line
    path.write_text(line + "\n" + line.replace('"\\ud800', '"\\udbff') + "\n")
    events = list(read_eve(path, skips=new_skips(), now=fixed_clock()))
    assert len(events) == 2
    for ev in events:
        json.dumps(ev.as_dict(), ensure_ascii=False).encode("utf-8")
        assert "\ufffd" in (ev.attrs or {})["signature"]


def test_lone_surrogates_in_an_eve_array_become_replacement_characters(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    path.write_bytes(b"[" + eve_line("2025-03-15T11:00:00+0000", signature="x \ud800").encode()
                     + b"]")
    (ev,) = read_eve(path, skips=new_skips(), now=fixed_clock())
    assert (ev.attrs or {})["signature"] == "x \ufffd"


def test_surrogate_bytes_in_raw_eve_json_become_replacement_characters(tmp_path: Path) -> None:
    # json.loads decodes bytes with surrogatepass: CESU-style bytes would come out as lone surrogates.
    path = tmp_path / "eve.json"
    path.write_bytes(eve_line("2025-03-15T11:00:00+0000", signature="SIG").encode().replace(b"SIG", b"\xed\xa0\x80")
                     + b"\n")
    (ev,) = read_eve(path, skips=new_skips(), now=fixed_clock())
    ev.raw.encode("utf-8")  # type: ignore[union-attr]
    (ev.attrs or {})["signature"].encode("utf-8")


def test_syslog_decoder_never_yields_surrogates() -> None:
    lines = [b"<34>1 2025-03-15T11:00:00Z bastion app 1 - - \xed\xa0\x80 \xed\xbf\xbf msg",
             b"Mar 15 11:00:00 bastion sshd[1]: Failed password for \xed\xa0\x80 from 198.51.100.7 port 1 ssh2"]
    events = list(SyslogSource("udp", fixed_clock(), new_skips()).events(lines))
    assert len(events) == 2
    for ev in events:
        json.dumps(ev.as_dict(), ensure_ascii=False).encode("utf-8")


def test_replay_of_eve_with_lone_surrogates_stores_the_incident(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    path.write_text(eve_line("2026-11-27T11:00:00+0000", signature="ET \ud800 evil") + "\n")
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    clock = lambda: datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    try:
        replay(App(AgentConfig(), store, clock), [path], "test")
        incidents = IncidentStore(store, clock).list()
        assert len(incidents) == 1
        assert "\ufffd" in incidents[0].title or any(
            "\ufffd" in json.dumps(f.attributes, ensure_ascii=False) for f in incidents[0].findings.values())
    finally:
        store.close()


def test_replay_of_syslog_with_absurd_times_stores_readable_incidents(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    lines = [f"<34>1 {'9999-12-31T23:59:59-14:00' if i % 2 else '0001-01-01T00:00:00+14:00'} bastion sshd 1 - - "
             f"Failed password for root from 198.51.100.7 port {i} ssh2" for i in range(12)]
    path.write_text("\n".join(lines) + "\n")
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    clock = lambda: datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    try:
        replay(App(AgentConfig(), store, clock), [path], "test")
        incidents = IncidentStore(store, clock).list()
        assert incidents and all(i.verdict is not None for i in incidents)
        assert all(i.last_seen == clock().timestamp() for i in incidents)
    finally:
        store.close()


def test_incident_store_survives_times_that_are_no_numbers_and_an_unreadable_verdict(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store = open_store(f"sqlite:///{db}")
    clock = lambda: datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    try:
        path = tmp_path / "eve.json"
        path.write_text(eve_line("2026-11-27T11:00:00+0000") + "\n"
                        + eve_line("2026-11-27T11:00:00+0000", src="198.51.100.4") + "\n")
        replay(App(AgentConfig(), store, clock), [path], "test")
        with sqlite3.connect(db) as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM incidents ORDER BY id")]
            assert len(ids) == 2
            conn.execute("UPDATE incidents SET last_seen = 'garbage', verdict_json = '{\"x\": 1}' WHERE id = ?",
                         (ids[0],))
            conn.execute("UPDATE findings SET first_seen = X'00ff' WHERE incident_id = ?", (ids[0],))
        repo = IncidentStore(store, clock)
        incidents = repo.list()
        assert sorted(i.id or 0 for i in incidents) == ids
        bad = repo.get(ids[0])
        assert bad is not None and bad.verdict is None
        assert (iso(bad.last_seen) or "").startswith("out-of-range")
        for f in bad.findings.values():
            json.dumps(f.as_dict())
    finally:
        store.close()
