"""Property tests for Suricata EVE reading: any JSON, any junk line, bounded strings, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchstander.connectors.errors import SourceError
from watchstander.connectors.events import DETECTION, DNS, KINDS, NETWORK, Event
from watchstander.connectors.ids import eve_event, read_eve

from .conftest import new_skips

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
HOSTILE = st.text(min_size=0, max_size=3000)
TIMESTAMPS = st.sampled_from([
    "2024-05-01T10:00:00.123456+0000", "2024-05-01T10:00:00.123456+00:00", "2024-05-01T10:00:00Z",
    "2024-05-01T10:00:00.123456-0500", "2024-05-01T10:00:00", "0001-01-01T00:00:00+0100", "not a time", "",
]) | HOSTILE
# Records shaped like EVE, with every field replaceable by something hostile.
EVE_LIKE = st.fixed_dictionaries(
    {"timestamp": TIMESTAMPS, "event_type": st.sampled_from(["alert", "dns", "flow", "stats", "http"]) | JSON},
    optional={
        "src_ip": HOSTILE | JSON, "dest_ip": HOSTILE | JSON, "src_port": st.integers() | JSON,
        "dest_port": st.integers() | JSON, "proto": HOSTILE | JSON,
        "alert": st.fixed_dictionaries({}, optional={
            "signature": HOSTILE | JSON, "signature_id": st.integers() | JSON, "category": HOSTILE,
            "severity": st.integers() | JSON, "action": HOSTILE}) | JSON,
        "dns": st.fixed_dictionaries({}, optional={
            "rrname": HOSTILE | JSON, "rrtype": HOSTILE | JSON, "type": HOSTILE | JSON,
            "queries": st.lists(st.fixed_dictionaries({"rrname": HOSTILE | JSON}), max_size=2) | JSON}) | JSON,
    },
)


def check_event(ev: Event) -> None:
    """Fields stay typed and bounded whatever the record held."""
    assert ev.kind in KINDS
    assert isinstance(ev.time, float)
    for port in (ev.sport, ev.dport):
        assert port is None or (type(port) is int and 0 <= port <= 65535)
    assert ev.src is None or len(ev.src) <= 64
    assert ev.dst is None or len(ev.dst) <= 64
    assert ev.proto is None or len(ev.proto) <= 16
    assert ev.raw is None or len(ev.raw) <= 512
    for value in (ev.attrs or {}).values():
        assert not isinstance(value, str) or len(value) <= 512
    if ev.kind == DETECTION:
        assert ev.attrs is not None and ev.attrs["severity"] in (1, 2, 3, 4)
        assert ev.attrs["signature_id"] is None or type(ev.attrs["signature_id"]) is int


@SETTINGS
@given(JSON | EVE_LIKE)
def test_eve_event_raises_only_value_errors(obj: Any) -> None:
    try:
        ev = eve_event(obj, "t", "r")
    except (ValueError, TypeError, OverflowError):
        return
    if ev is not None:
        check_event(ev)


JUNK_LINES = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([b"{", b"[", b'{"a": ' + b"1" * 5000 + b"}", b"[" * 5000, b'{"x":' * 3000, b"\xff\xfe{}",
                     b"null", b'"str"', b"12", b"{}"]),
)
LINE = st.one_of(EVE_LIKE.map(lambda o: json.dumps(o).encode()), JUNK_LINES)


@SETTINGS
@given(st.lists(LINE, max_size=12))
def test_json_lines_lose_nothing(tmp_path: Path, lines: list[bytes]) -> None:
    lines = [ln.replace(b"\n", b" ").replace(b"\r", b" ") for ln in lines]
    path = tmp_path / "eve.json"
    path.write_bytes(b"\n".join(lines) + b"\n")
    if path.read_bytes().lstrip().startswith(b"["):
        path.write_bytes(b"\n" + b"{}\n" + path.read_bytes())  # keep to the JSON-lines reader here
        lines = [b"{}"] + lines
    skips = new_skips()
    events = list(read_eve(path, skips=skips))
    for ev in events:
        check_event(ev)
    records = sum(1 for ln in lines if ln.strip())
    assert len(events) + skips.total + sum(skips.ignored.values()) == records


@SETTINGS
@given(st.lists(JSON | EVE_LIKE, max_size=8), st.sampled_from([b"", b"junk", b"]", b",", b"[" * 3000]))
def test_json_arrays(tmp_path: Path, records: list[Any], trailer: bytes) -> None:
    path = tmp_path / "eve.json"
    path.write_bytes(b"  \n" + json.dumps(records).encode() + trailer)
    skips = new_skips()
    try:
        events = list(read_eve(path, skips=skips))
    except SourceError:
        assert trailer  # only the junk after the array makes the file unreadable
        return
    assert not trailer
    for ev in events:
        check_event(ev)
    assert len(events) + skips.total + sum(skips.ignored.values()) == len(records)


def test_known_records(tmp_path: Path) -> None:
    lines = [
        {"timestamp": "2024-05-01T10:00:00.000000+0000", "event_type": "alert", "src_ip": "10.0.0.5",
         "src_port": 51000, "dest_ip": "10.0.0.1", "dest_port": 22, "proto": "TCP",
         "alert": {"signature": "ET SCAN", "signature_id": 2001219, "severity": 2, "category": "Scan"}},
        {"timestamp": "2024-05-01T10:00:01.000000+0000", "event_type": "dns", "src_ip": "10.0.0.5",
         "dest_ip": "10.0.0.1", "proto": "UDP", "dns": {"type": "query", "rrname": "a.example.", "rrtype": "TXT"}},
        {"timestamp": "2024-05-01T10:00:02.000000+0000", "event_type": "flow", "src_ip": "10.0.0.5",
         "dest_ip": "10.0.0.1", "proto": "TCP", "src_port": True, "dest_port": 443},
        {"timestamp": "2024-05-01T10:00:03.000000+0000", "event_type": "stats", "stats": {"uptime": 1}},
    ]
    path = tmp_path / "eve.json"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    skips = new_skips()
    events = list(read_eve(path, skips=skips))
    assert [ev.kind for ev in events] == [DETECTION, DNS, NETWORK]
    assert events[0].time == 1714557600.0 and events[0].proto == "tcp"
    assert events[1].attrs == {"qname": "a.example", "qtype": 16, "response": False}
    assert events[2].sport is None and events[2].dport == 443
    assert skips.ignored["unused EVE record"] == 1 and not skips.counts


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open"):
        list(read_eve(tmp_path / "absent.json"))
