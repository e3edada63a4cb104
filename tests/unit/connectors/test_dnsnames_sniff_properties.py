"""Property tests for DNS name lists and content sniffing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchstander.connectors.dnsnames import looks_like_name, read_dns_names
from watchstander.connectors.errors import SourceError, UnknownFormatError
from watchstander.connectors.netflow_pcap import NETFLOW
from watchstander.connectors.sniff import DNS_NAMES, EVE, PCAP, SYSLOG, sniff
from watchstander.connectors.zeek import ZEEK

from .conftest import new_skips
from .test_packets_properties import UDP_FRAME, pcap, pcapng

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

LABEL = st.from_regex(r"[a-z0-9_-]{1,20}", fullmatch=True)
NAMES = st.lists(LABEL, min_size=2, max_size=5).map(".".join).filter(
    lambda n: not n.replace(".", "").isdigit())


@SETTINGS
@given(st.ip_addresses())
def test_ip_addresses_are_not_names(addr: object) -> None:
    assert not looks_like_name(str(addr))
    assert not looks_like_name(str(addr) + ".")


@SETTINGS
@given(NAMES, st.booleans())
def test_names_are_names(name: str, dot: bool) -> None:
    assert looks_like_name(name + ("." if dot else ""))


@pytest.mark.parametrize("text", ["qname", "label,qname", "query name", "", ".", "..", "a", "a b.c", "x" * 2000 + ".c"])
def test_not_names(text: str) -> None:
    assert not looks_like_name(text)


DNS_LINE = st.one_of(
    NAMES, st.tuples(st.sampled_from(["0", "1", "benign", "tunnel"]), NAMES).map(",".join),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")), st.just("# comment"), st.just(""),
    st.just("label,qname"), st.ip_addresses().map(str),
)


@SETTINGS
@given(st.lists(DNS_LINE, max_size=15), st.binary(max_size=10))
def test_read_dns_names_loses_nothing(tmp_path: Path, lines: list[str], junk: bytes) -> None:
    lines = [ln.replace("\n", " ").replace("\r", " ") for ln in lines]
    path = tmp_path / "names.txt"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n" + junk.replace(b"\n", b""))
    skips = new_skips()
    events = list(read_dns_names(path, skips=skips))
    records = sum(1 for ln in path.read_bytes().split(b"\n") if ln.decode("utf-8", "replace").strip())
    assert len(events) + skips.total + sum(skips.ignored.values()) == records
    for ev in events:
        assert ev.attrs is not None and looks_like_name(ev.attrs["qname"])


def test_header_after_comments_is_not_a_bad_name(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("# exported 2024-05-01\nlabel,qname\n0,www.example.com\n1,\"aGVsbG8.t.example.net\"\n")
    skips = new_skips()
    events = list(read_dns_names(path, skips=skips))
    assert [ev.attrs["qname"] for ev in events if ev.attrs] == ["www.example.com", "aGVsbG8.t.example.net"]
    assert not skips.counts and skips.ignored == {"comment": 1, "CSV header": 1}


@SETTINGS
@given(st.binary(min_size=0, max_size=400) | st.lists(st.sampled_from([
    b"{", b"[", b'"event_type"', b"<13>", b"Jan  1 00:00:00 ", b"2024-01-01T00:00:00 ", b"a.example", b",",
    b"\n", b"\xff", b"1" * 5000, b"[" * 3000, b"{\xff", b"#", b"\n\n"]), max_size=20).map(b"".join))
def test_sniff_raises_only_its_own_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "blob"
    path.write_bytes(data)
    try:
        assert sniff(path) in (PCAP, SYSLOG, EVE, DNS_NAMES, ZEEK, NETFLOW)
    except UnknownFormatError:
        pass


def test_sniff_unreadable_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        sniff(tmp_path / "absent")
    with pytest.raises(SourceError):
        sniff(tmp_path)


@pytest.mark.parametrize("content, expected", [
    (pcap([(len(UDP_FRAME), UDP_FRAME)]), PCAP),
    (pcap([(len(UDP_FRAME), UDP_FRAME)], big_endian=True, nano=True), PCAP),
    (pcapng([UDP_FRAME]), PCAP),
    (b"Mar 15 11:00:00 host sshd[1]: Accepted publickey for a from 10.0.0.1 port 2 ssh2\n", SYSLOG),
    (b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed\n", SYSLOG),
    (b"<165>1 2003-10-11T22:14:15.003Z host app - ID47 - msg\n", SYSLOG),
    (b"2024-05-01T10:00:00.123+02:00 host app: msg\n", SYSLOG),
    (json.dumps({"timestamp": "2024-05-01T10:00:00+0000", "event_type": "flow"}).encode() + b"\n", EVE),
    (b'[\n  {"timestamp": "2024-05-01T10:00:00+0000", "event_type": "stats"}\n]\n', EVE),
    (b"www.example.com\nmail.example.org\n", DNS_NAMES),
    (b"label,qname\n0,www.example.com\n1,x.t.example.net\n", DNS_NAMES),
    (b"# tshark -T fields -e dns.qry.name\nlabel,qname\n0,www.example.com\n", DNS_NAMES),
])
def test_sniff_recognizes_each_format(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "blob"
    path.write_bytes(content)
    assert sniff(path) == expected


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"1.2.3.4\n10.0.0.1\n", b"{\xff\n", b'{"a": ' + b"9" * 5000 + b"}\n"])
def test_sniff_refuses_other_content(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "blob"
    path.write_bytes(content)
    with pytest.raises(UnknownFormatError):
        sniff(path)
