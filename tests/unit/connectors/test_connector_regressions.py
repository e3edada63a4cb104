"""One test per connector bug found and fixed, each with the input that showed it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from watchstander.connectors.errors import SourceError, UnknownFormatError
from watchstander.connectors.events import AUTH, DNS
from watchstander.connectors.ids import eve_event, read_eve
from watchstander.connectors.sniff import sniff
from watchstander.connectors.syslog import SyslogParser, SyslogSource

from .conftest import fixed_clock, new_skips


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize("pri", ["1", "13", "165"])
def test_rfc5424_detected_for_every_pri_width(pri: str) -> None:
    # line[1:5].split(">")[-1][:2] == "1 " held only for one-digit PRI values.
    parser = SyslogParser(fixed_clock())
    rec = parser.parse(f"<{pri}>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed")
    assert (rec.host, rec.app, rec.msg) == ("mymachine.example.com", "su", "'su root' failed")


def test_december_line_read_in_january_is_last_year() -> None:
    parser = SyslogParser(fixed_clock(datetime(2025, 1, 2, 0, 5, tzinfo=timezone.utc)))
    assert parser.parse("Dec 31 23:59:58 h app: x").time == utc(2024, 12, 31, 23, 59, 58)
    assert parser.parse("Jan  1 00:00:01 h app: x").time == utc(2025, 1, 1, 0, 0, 1)


def test_clock_skew_across_a_month_end() -> None:
    # "(month, day + 1)" allowed no skew over a month end: Feb 1 read on Jan 31 went to last year.
    parser = SyslogParser(fixed_clock(datetime(2025, 1, 31, 23, 59, tzinfo=timezone.utc)))
    assert parser.parse("Feb  1 00:00:30 h app: x").time == utc(2025, 2, 1, 0, 0, 30)


def test_year_follows_the_clock_in_a_long_running_source() -> None:
    # The reference year was read once, at construction; a daemon started in December put
    # January lines into the year before.
    now = [datetime(2024, 12, 20, tzinfo=timezone.utc)]
    parser = SyslogParser(lambda: now[0])
    assert parser.parse("Dec 20 10:00:00 h app: x").time == utc(2024, 12, 20, 10)
    now[0] = datetime(2025, 1, 5, tzinfo=timezone.utc)
    assert parser.parse("Jan  5 10:00:00 h app: x").time == utc(2025, 1, 5, 10)


def test_leap_day_in_a_common_year_goes_to_the_last_leap_year() -> None:
    # calendar.timegm((2025, 2, 29, ...)) silently meant March 1.
    parser = SyslogParser(fixed_clock(datetime(2025, 6, 1, tzinfo=timezone.utc)))
    assert parser.parse("Feb 29 12:00:00 h app: x").time == utc(2024, 2, 29, 12)


def test_impossible_dates_are_counted_skips() -> None:
    skips = new_skips()
    lines = [b"Apr 31 12:00:00 h app: x", b"Feb 29 2023 12:00:00 h app: x", b"Feb 29 12:00:00 2023 h app: x",
             b"Mar 15 11:00:00 h app: fine"]
    events = list(SyslogSource("t", fixed_clock(), skips).events(lines))
    assert len(events) == 1 and skips.counts["unparseable syslog line"] == 3


def test_non_ascii_digits_are_not_a_timestamp() -> None:
    with pytest.raises(ValueError):
        SyslogParser(fixed_clock()).parse("Mar \u0661\u0665 11:00:00 h app: x")


def test_sshd_port_and_user_are_bounded() -> None:
    user = "x" * 5000
    line = f"Mar 15 11:00:00 h sshd[1]: Failed password for invalid user {user} from 10.0.0.9 port 9999999 ssh2"
    (ev,) = SyslogSource("t", fixed_clock()).events([line.encode()])
    assert ev.kind == AUTH and ev.sport is None and ev.user is not None and len(ev.user) == 256


@pytest.mark.parametrize("line", [b'{"a": ' + b"1" * 5000 + b"}", b"[" * 100_000, b"\xff{}"])
def test_eve_lines_that_json_refuses_are_counted(tmp_path: Path, line: bytes) -> None:
    # ValueError (over 4300 digits) and RecursionError escaped read_eve, ending the whole file.
    path = tmp_path / "eve.json"
    path.write_bytes(b'{"timestamp": "2024-05-01T10:00:00+0000", "event_type": "flow"}\n' + line + b"\n")
    skips = new_skips()
    assert len(list(read_eve(path, skips=skips))) == 1
    assert skips.counts["invalid JSON"] == 1


def test_eve_array_with_huge_integer_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    path.write_bytes(b"[" + b"1" * 5000 + b"]")
    with pytest.raises(SourceError):
        list(read_eve(path))


def test_eve_booleans_are_not_ports_or_ids() -> None:
    obj = {"timestamp": "2024-05-01T10:00:00+0000", "event_type": "alert", "src_port": True, "dest_port": False,
           "alert": {"signature": "s", "signature_id": True, "severity": True}}
    ev = eve_event(obj, "t", "r")
    assert ev is not None and ev.sport is None and ev.dport is None
    assert ev.attrs is not None and ev.attrs["signature_id"] is None and ev.attrs["severity"] == 3


def test_eve_dns_version_3_records() -> None:
    obj = {"timestamp": "2024-05-01T10:00:00+0000", "event_type": "dns", "src_ip": "10.0.0.5",
           "dns": {"version": 3, "type": "response", "queries": [{"rrname": "x.example", "rrtype": "TXT"}]}}
    ev = eve_event(obj, "t", "r")
    assert ev is not None and ev.kind == DNS
    assert ev.attrs == {"qname": "x.example", "qtype": 16, "response": True}


@pytest.mark.parametrize("content", [b"{\xff\n", b'{"a": ' + b"1" * 5000 + b"}\n", b"{" + b'"a":[' * 5000 + b"\n"])
def test_sniff_on_json_like_junk_is_unknown_format(tmp_path: Path, content: bytes) -> None:
    # UnicodeDecodeError, ValueError and RecursionError escaped sniff's JSON probe.
    path = tmp_path / "blob"
    path.write_bytes(content)
    with pytest.raises(UnknownFormatError):
        sniff(path)


def test_eve_records_round_trip_through_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    path.write_text(json.dumps({"timestamp": "2024-05-01T10:00:00.5+0000", "event_type": "flow"}) + "\n")
    (ev,) = read_eve(path)
    assert ev.time == utc(2024, 5, 1, 10) + 0.5


def _ipv6_frame(next_header: int, payload: bytes) -> bytes:
    import struct

    return (bytes([0x60, 0, 0, 0]) + struct.pack("!HBB", len(payload), next_header, 64)
            + b"\x00" * 15 + b"\x01" + b"\x00" * 15 + b"\x02" + payload)


def test_first_ipv6_fragment_is_decoded_and_later_ones_counted() -> None:
    from watchstander.connectors.packets import LINK_RAW, PacketDecoder

    skips = new_skips()
    decoder = PacketDecoder("t", skips)
    udp = bytes.fromhex("0001000200080000")
    (ev,) = decoder.decode(_ipv6_frame(44, bytes.fromhex("1100000100000001") + udp), LINK_RAW, 0.0)
    assert (ev.proto, ev.sport, ev.dport) == ("udp", 1, 2)
    assert decoder.decode(_ipv6_frame(44, bytes.fromhex("1100005100000001") + udp), LINK_RAW, 0.0) == []
    assert skips.ignored["non-first IPv6 fragment"] == 1


def test_dns_compression_loop_is_a_counted_skip() -> None:
    import logging
    import struct

    from watchstander.connectors.packets import LINK_RAW, PacketDecoder

    dns = bytes.fromhex("000101000001000000000000c00c00010001")
    udp = struct.pack("!HHHH", 40000, 53, 8 + len(dns), 0) + dns
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), bytes(4)) + udp
    skips = new_skips()
    logging.getLogger("scapy.runtime").disabled = True
    try:
        events = PacketDecoder("t", skips).decode(ip, LINK_RAW, 0.0)
    finally:
        logging.getLogger("scapy.runtime").disabled = False
    assert all(e.kind != DNS for e in events)
    assert skips.counts["malformed DNS message"] == 1


HOSTILE = [
    "a." + "\\123" * 4000 + "!",                       # backtracking bait for the DNS-name pattern
    "Jan  1 00:00:00 h sshd[1]: Failed password for " + " from x" * 2000,
    "Jan  1 00:00:00 h sshd(pam_unix)[1]: authentication failure;" + " rhost" * 2500,
    "<13>1 2024-01-01T00:00:00Z h a p m " + "[x@1 a=\"\\" * 1500,
    "Jan  1 00:00:00 " + "x" * 16000,
    "[" * 16000,
    "Jan  1 00:00:00 h " + "a(" * 8000 + ": m",
]


@pytest.mark.parametrize("line", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_lines_cannot_stall_the_parsers(line: str) -> None:
    import time

    from watchstander.connectors.dnsnames import looks_like_name

    t0 = time.perf_counter()
    looks_like_name(line)
    list(SyslogSource("t", fixed_clock(), new_skips()).events([line.encode()]))
    assert time.perf_counter() - t0 < 1.0
