"""Properties of the Zeek reader, in both forms: what Zeek writes comes back exactly; whatever else arrives is
counted, never raised, and never costs the records around it."""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from support.zeek_writer import json_log, tsv_log

from watchstander.connectors.events import Event
from watchstander.connectors.formats import open_file
from watchstander.connectors.sniff import sniff
from watchstander.connectors.zeek import MAX_RECORD, ZEEK, ZeekLines, flags_for

from .conftest import fixed_clock, new_skips

ports = st.integers(0, 65535)
counts = st.integers(0, 2**40)
addrs = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
times = st.floats(631_152_000.0, 1_742_040_000.0).map(lambda t: round(t, 6))
text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)
states = st.sampled_from(["S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH"])

conn_rows = st.fixed_dictionaries({
    "ts": times, "uid": st.from_regex(r"C[A-Za-z0-9]{5,17}", fullmatch=True), "id.orig_h": addrs,
    "id.orig_p": ports, "id.resp_h": addrs, "id.resp_p": ports, "proto": st.sampled_from(["tcp", "udp"]),
    "service": st.one_of(st.none(), text), "duration": st.one_of(st.none(), st.floats(0, 1e6).map(lambda d: round(d, 6))),
    "orig_bytes": counts, "resp_bytes": counts, "conn_state": states,
    "history": st.one_of(st.none(), st.from_regex(r"[ShADadFfRrTtWw^]{1,12}", fullmatch=True)),
    "orig_pkts": counts, "orig_ip_bytes": counts, "resp_pkts": counts, "resp_ip_bytes": counts,
    "tunnel_parents": st.lists(text, max_size=3),
})
weird_rows = st.fixed_dictionaries({
    "ts": times, "uid": st.none(), "name": text, "addl": st.one_of(st.none(), text), "notice": st.booleans(),
    "peer": text, "source": st.sampled_from(["TCP", "UDP", "IP"]),
})


def _decode(data: bytes) -> tuple[list[Event], Any]:
    skips = new_skips()
    return list(ZeekLines("p", skips, fixed_clock()).events(data.split(b"\n"))), skips


def _key(ev: Event) -> dict[str, Any]:
    return {**ev.as_dict(), "ref": None}


@settings(max_examples=40, deadline=None)
@given(st.lists(conn_rows, min_size=1, max_size=5))
def test_conn_rows_come_back_exactly_in_both_forms(rows: list[dict[str, Any]]) -> None:
    tsv, tsv_skips = _decode(tsv_log("conn", rows))
    js, js_skips = _decode(json_log(rows))
    assert tsv_skips.total == js_skips.total == 0
    assert [_key(e) for e in tsv] == [_key(e) for e in js]
    for ev, row in zip(tsv, rows, strict=True):
        assert ev.time == row["ts"] and (ev.src, ev.dst) == (row["id.orig_h"], row["id.resp_h"])
        assert ipaddress.ip_address(ev.src) and (ev.sport, ev.dport) == (row["id.orig_p"], row["id.resp_p"])
        assert ev.attrs is not None and ev.attrs["bytes"] == row["orig_ip_bytes"] + row["resp_ip_bytes"]
        assert ev.attrs["packets"] == row["orig_pkts"] + row["resp_pkts"]
        assert ev.attrs["conn_state"] == row["conn_state"] and ev.attrs["uid"] == row["uid"]
        assert ev.flags == (flags_for(row["history"], row["conn_state"]) if row["proto"] == "tcp" else 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(weird_rows, min_size=1, max_size=5))
def test_any_text_survives_zeek_escaping(rows: list[dict[str, Any]]) -> None:
    tsv, _ = _decode(tsv_log("weird", rows))
    js, _ = _decode(json_log(rows))
    assert [(e.attrs or {})["weird"] for e in tsv] == [r["name"][:128] for r in rows]
    assert [_key(e) for e in tsv] == [_key(e) for e in js]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode),
                          st.sampled_from([b"#fields\tts", b"#separator \\x2c", b'{"ts": 1}', b"{", b"#path\t",
                                           b'{"ts": 1.7e9, "note": {"a": 1}}', b"\t" * 30])), max_size=12),
       st.lists(conn_rows, min_size=1, max_size=3))
def test_hostile_lines_between_good_logs_cost_nothing_else(junk: list[bytes], rows: list[dict[str, Any]]) -> None:
    good = tsv_log("conn", rows)
    lines = [ln for j in junk for ln in j.split(b"\n") if not ln.startswith(b"#")]
    data = good + b"\n".join(lines) + b"\n" + good + json_log(rows)
    evs, skips = _decode(data)
    good_events = [e for e in evs if e.source == "zeek:conn" and (e.attrs or {}).get("uid") in {r["uid"] for r in rows}]
    assert len(good_events) >= 3 * len(rows)
    # Every non-blank, non-header line is an event (or several), a counted skip or a counted ignore.
    body = [ln for ln in data.split(b"\n") if ln.strip() and not ln.startswith(b"#")]
    made = len({e.ref for e in evs})
    assert made + skips.total + sum(skips.ignored.values()) == len(body)


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=1, max_size=2000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    for chunk in (data, b"#separator \\x09\n#fields\tts\tuid\n" + data, b"{" + data):
        evs, skips = _decode(chunk[:MAX_RECORD])
        assert all(isinstance(e, Event) for e in evs) and skips.total >= 0


@settings(max_examples=30, deadline=None)
@given(st.lists(conn_rows, min_size=1, max_size=3), st.lists(weird_rows, min_size=1, max_size=3), st.booleans())
def test_generated_logs_sniff_as_zeek_and_replay_whole(conns: list[dict[str, Any]], weirds: list[dict[str, Any]],
                                                        as_json: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for path, rows in (("conn", conns), ("weird", weirds)):
            file = Path(tmp) / f"{path}.log"
            file.write_bytes(json_log(rows) if as_json else tsv_log(path, rows))
            assert sniff(file) == ZEEK
            fmt, events = open_file(file, fixed_clock(), new_skips())
            assert fmt == ZEEK and len(list(events)) == len(rows)
