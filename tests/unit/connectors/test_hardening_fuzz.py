"""Seeded mutation fuzzing of every reader (issue 13): a fixed budget of mutated real samples per reader.

The contract checked on every case: no exception escapes but SourceError, every Event time is a
plausible telemetry time, and every Event is JSON that encodes as UTF-8 (what the store needs).
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from watchstander.connectors.dnsnames import read_dns_names
from watchstander.connectors.errors import SourceError
from watchstander.connectors.events import EARLIEST_TIME, FUTURE_SLACK_S, Event
from watchstander.connectors.formats import FORMATS
from watchstander.connectors.ids import EveLines, read_eve
from watchstander.connectors.packets import LINK_ETHERNET, PacketDecoder, read_packets
from watchstander.connectors.skips import SkipCounter
from watchstander.connectors.sniff import sniff
from watchstander.connectors.syslog import SyslogSource, read_syslog

from .conftest import NOW, fixed_clock, new_skips
from .test_hardening_input import frame, pcapng_blocks, usec

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
CASES = 200
INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xed\xa0\x80",
               b"\\ud800", b"[[[[[[[[", b"9999-12-31T23:59:59-14:00", b"0001-01-01T00:00:00+14:00", b"\n", b"<999>",
               b"1e999", b'"', b"{", b"}", b"\xc0", b"\x0a\x0d\x0d\x0a"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four random edits: flips, overwrites with interesting values, inserts, deletions, splices."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf.extend(rng.choice(INTERESTING))
            continue
        at = rng.randrange(len(buf))
        op = rng.randrange(6)
        if op == 0:
            buf[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            value = rng.choice(INTERESTING)
            buf[at : at + len(value)] = value
        elif op == 2:
            buf[at:at] = rng.choice(INTERESTING) * rng.randint(1, 3)
        elif op == 3:
            del buf[at : at + rng.randint(1, 64)]
        elif op == 4:
            end = min(len(buf), at + rng.randint(1, 256))
            buf[at:at] = buf[at:end]
        else:
            buf[at] = rng.randrange(256)
    return bytes(buf)


def check(events: Iterable[Event]) -> int:
    """Drain a reader, asserting the contract on every Event; returns how many there were."""
    latest = NOW.timestamp() + FUTURE_SLACK_S
    n = 0
    for ev in events:
        n += 1
        assert EARLIEST_TIME <= ev.time <= latest, ev
        json.dumps(ev.as_dict(), ensure_ascii=False, allow_nan=False).encode("utf-8")
    return n


def pcap_seed() -> bytes:
    data = frame()
    dns = bytes.fromhex("abcd01000001000000000000") + b"\x07example\x03com\x00\x00\x01\x00\x01"
    udp = struct.pack("!HHHH", 5353, 53, 8 + len(dns), 0) + dns
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02")
    dns_frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
    sec = int(NOW.timestamp()) - 60
    recs = b"".join(struct.pack("<IIII", sec + i, 0, len(f), len(f)) + f for i, f in enumerate([data, dns_frame] * 4))
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + recs


def pcapng_seed() -> bytes:
    return b"".join(pcapng_blocks([usec(NOW.timestamp() - 60 + i) for i in range(8)]))


FileReader = Callable[[Path, SkipCounter], Iterable[Event]]

READERS: dict[str, tuple[Callable[[], bytes], FileReader]] = {
    "pcap": (pcap_seed, lambda p, s: read_packets(p, skips=s, now=fixed_clock())),
    "pcapng": (pcapng_seed, lambda p, s: read_packets(p, skips=s, now=fixed_clock())),
    "syslog": (lambda: (SAMPLES / "syslog-mixed.log").read_bytes()[:6000],
               lambda p, s: read_syslog(p, fixed_clock(), skips=s)),
    "eve": (lambda: (SAMPLES / "eve-mixed.json").read_bytes()[:5000], lambda p, s: read_eve(p, skips=s, now=fixed_clock())),
    "eve-array": (lambda: b"[" + b",".join((SAMPLES / "eve-mixed.json").read_bytes()[:3000].splitlines()[:-1]) + b"]",
                  lambda p, s: read_eve(p, skips=s, now=fixed_clock())),
    "dnsnames": (lambda: (SAMPLES / "dnsnames.csv").read_bytes(),
                 lambda p, s: read_dns_names(p, skips=s, time=NOW.timestamp())),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_mutated_files_never_raise_past_the_reader(reader: str, tmp_path: Path) -> None:
    seed, read = READERS[reader]
    base = seed()
    rng = random.Random(f"issue13-{reader}")
    path = tmp_path / "case"
    for _ in range(CASES):
        path.write_bytes(mutate(rng, base))
        try:
            check(read(path, new_skips(reader)))
        except SourceError:
            pass


def test_mutated_files_never_raise_past_sniffing_and_the_format_table(tmp_path: Path) -> None:
    """Mixed seeds through sniff and the format table, as replay reads them."""
    rng = random.Random("issue13-sniffed")
    seeds = [seed() for seed, _ in READERS.values()]
    path = tmp_path / "case"
    for _ in range(CASES):
        path.write_bytes(mutate(rng, rng.choice(seeds)))
        try:
            fmt = FORMATS.get(sniff_or_none(path) or "")
            if fmt is not None:
                check(fmt.read_file(path, fixed_clock(), new_skips("sniffed")))
        except SourceError:
            pass


def sniff_or_none(path: Path) -> str | None:
    try:
        return sniff(path)
    except SourceError:
        return None


def test_mutated_lines_never_raise_past_the_line_decoders() -> None:
    """The decoders a followed file and a syslog listener use, fed mutated lines directly."""
    rng = random.Random("issue13-lines")
    syslog = (SAMPLES / "syslog-mixed.log").read_bytes().splitlines()
    eve = (SAMPLES / "eve-mixed.json").read_bytes().splitlines()
    sys_dec = SyslogSource("udp", fixed_clock(), new_skips("udp"))
    eve_dec = EveLines("eve", new_skips("eve"), fixed_clock())
    for _ in range(CASES * 2):
        check(sys_dec.events([mutate(rng, rng.choice(syslog)) for _ in range(4)]))
        check(eve_dec.events([mutate(rng, rng.choice(eve)) for _ in range(4)]))


def test_mutated_dns_messages_never_raise_past_the_packet_decoder() -> None:
    """DNS names inside packets: mutated DNS messages (labels, pointers, counts) on UDP port 53."""
    rng = random.Random("issue13-dns")
    seeds = [bytes.fromhex("abcd01000001000000000000") + b"\x07example\x03com\x00\x00\x01\x00\x01",
             bytes.fromhex("abcd81800001000100000000") + b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
             + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01"]
    decoder = PacketDecoder("dns", new_skips("dns"))
    ts = NOW.timestamp()
    for i in range(CASES * 2):
        dns = mutate(rng, rng.choice(seeds))
        udp = struct.pack("!HHHH", 5353, 53, 8 + len(dns), 0) + dns
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\xc0\x00\x02\x01",
                         b"\xc0\x00\x02\x02")
        check(decoder.decode(b"\x00" * 12 + b"\x08\x00" + ip + udp, LINK_ETHERNET, ts, f"dns#{i}"))


