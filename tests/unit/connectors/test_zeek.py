"""Zeek logs into Events: the conn/dns/ssh/notice/weird mapping in TSV and JSON, sniffing, hostile lines,
and Zeek's own baseline logs from ../shared/telemetry (their masked times put back from the captures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.zeek_samples import unmask
from support.zeek_writer import json_log, tsv_log

from watchstander.connectors.events import ACK, AUTH, DETECTION, DNS, FIN, LOG, NETWORK, RST, SYN, Event
from watchstander.connectors.formats import FORMATS, open_file
from watchstander.connectors.sniff import EVE, sniff
from watchstander.connectors.zeek import MAX_ATTEMPTS, MAX_RECORD, ZEEK, ZeekLines, flags_for, read_zeek

from .conftest import fixed_clock, new_skips

T0 = 1_700_000_000.25
CONN = {"ts": T0, "uid": "CabC1", "id.orig_h": "10.0.0.5", "id.orig_p": 51000, "id.resp_h": "10.0.0.9",
        "id.resp_p": 22, "proto": "tcp", "service": "ssh", "duration": 1.5, "orig_bytes": 100, "resp_bytes": 200,
        "conn_state": "SF", "local_orig": True, "local_resp": True, "missed_bytes": 0, "history": "ShADadFf",
        "orig_pkts": 5, "orig_ip_bytes": 400, "resp_pkts": 4, "resp_ip_bytes": 500, "tunnel_parents": []}
DNS_ROW = {"ts": T0, "uid": "Cd1", "id.orig_h": "10.0.0.5", "id.orig_p": 5353, "id.resp_h": "10.0.0.2",
           "id.resp_p": 53, "proto": "udp", "trans_id": 7, "rtt": 0.01, "query": "aGVsbG8.t.example.com",
           "qclass": 1, "qclass_name": "C_INTERNET", "qtype": 16, "qtype_name": "TXT", "rcode": 0,
           "rcode_name": "NOERROR", "AA": False, "TC": False, "RD": True, "RA": True, "Z": 0,
           "answers": ["v=spf1 -all"], "TTLs": [60.0], "rejected": False}
SSH_ROW = {"ts": T0, "uid": "Cs1", "id.orig_h": "192.0.2.7", "id.orig_p": 40000, "id.resp_h": "10.0.0.9",
           "id.resp_p": 22, "version": 2, "auth_success": False, "auth_attempts": 3, "direction": "INBOUND",
           "client": "SSH-2.0-libssh", "server": "SSH-2.0-OpenSSH_9.2"}
NOTICE_ROW = {"ts": T0, "uid": None, "note": "Scan::Port_Scan", "msg": "192.0.2.7 scanned at least 15 unique ports",
              "sub": "local", "src": "192.0.2.7", "dst": "10.0.0.9", "p": None, "n": None,
              "actions": ["Notice::ACTION_LOG"]}
WEIRD_ROW = {"ts": T0, "uid": "Cw1", "id.orig_h": "10.0.0.5", "id.orig_p": 1, "id.resp_h": "10.0.0.9",
             "id.resp_p": 2, "name": "bad_TCP_checksum", "addl": None, "notice": False, "peer": "zeek",
             "source": "TCP"}
ROWS = {"conn": CONN, "dns": DNS_ROW, "ssh": SSH_ROW, "notice": NOTICE_ROW, "weird": WEIRD_ROW}


def _events(tmp_path: Path, data: bytes, name: str = "x.log") -> tuple[list[Event], Any]:
    path = tmp_path / name
    path.write_bytes(data)
    skips = new_skips()
    return list(read_zeek(path, skips=skips, now=fixed_clock())), skips


def _same(a: Event, b: Event) -> bool:
    return {**a.as_dict(), "ref": None} == {**b.as_dict(), "ref": None}


@pytest.mark.parametrize("form", ["tsv", "json"])
def test_conn_is_one_flow_by_the_contract(tmp_path: Path, form: str) -> None:
    data = tsv_log("conn", [CONN]) if form == "tsv" else json_log([CONN])
    (ev,), skips = _events(tmp_path, data)
    assert skips.total == 0
    assert (ev.time, ev.source, ev.kind, ev.src, ev.dst, ev.sport, ev.dport, ev.proto) == (
        T0, "zeek:conn", NETWORK, "10.0.0.5", "10.0.0.9", 51000, 22, "tcp")
    assert ev.flags == SYN | ACK | FIN
    assert ev.attrs == {"flow": True, "packets": 9, "bytes": 900, "duration": 1.5, "orig_bytes": 100,
                        "resp_bytes": 200, "conn_state": "SF", "uid": "CabC1", "history": "ShADadFf"}


@pytest.mark.parametrize(("history", "state", "flags"), [
    (None, "S0", SYN), (None, "REJ", SYN | RST), (None, "SF", SYN | ACK | FIN), (None, "RSTOS0", SYN | RST),
    (None, "OTH", 0), (None, "bogus", 0), ("S", "S0", SYN), ("Sr", "REJ", SYN | RST), ("ShR", "RSTO", SYN | ACK | RST),
    ("DaFfA", "SF", ACK | FIN), ("ShADadfF", "SF", SYN | ACK | FIN),
])
def test_tcp_flags_from_history_or_state(history: str | None, state: str, flags: int) -> None:
    assert flags_for(history, state) == flags


def test_conn_udp_and_icmp_carry_no_flags_and_icmp_type_in_ports(tmp_path: Path) -> None:
    rows = [{**CONN, "proto": "udp", "history": "Dd", "conn_state": "SF"},
            {**CONN, "proto": "icmp", "id.orig_p": 8, "id.resp_p": 0, "history": None, "conn_state": "OTH"},
            {**CONN, "proto": "icmp", "id.orig_h": "2001:db8::1", "id.resp_h": "2001:db8::2", "id.orig_p": 128}]
    evs, _ = _events(tmp_path, tsv_log("conn", rows))
    assert [(e.proto, e.flags, e.sport) for e in evs] == [("udp", 0, 51000), ("icmp", 0, 8), ("icmp6", 0, 128)]


@pytest.mark.parametrize("form", ["tsv", "json"])
def test_dns_is_a_query_the_tunnel_detector_reads(tmp_path: Path, form: str) -> None:
    data = tsv_log("dns", [DNS_ROW]) if form == "tsv" else json_log([DNS_ROW])
    (ev,), _ = _events(tmp_path, data)
    assert (ev.kind, ev.source, ev.src, ev.dst, ev.dport, ev.proto) == (DNS, "zeek:dns", "10.0.0.5", "10.0.0.2", 53,
                                                                      "udp")
    assert ev.attrs == {"qname": "aGVsbG8.t.example.com", "qtype": 16, "response": False, "rcode": 0,
                        "answers": ["v=spf1 -all"]}


def test_dns_without_query_is_ignored_not_lost(tmp_path: Path) -> None:
    evs, skips = _events(tmp_path, tsv_log("dns", [{**DNS_ROW, "query": None}]))
    assert evs == [] and skips.ignored["unused Zeek record"] == 1 and skips.total == 0


@pytest.mark.parametrize("form", ["tsv", "json"])
def test_ssh_failures_successes_and_unknowns(tmp_path: Path, form: str) -> None:
    rows = [SSH_ROW, {**SSH_ROW, "auth_success": True, "auth_attempts": 2}, {**SSH_ROW, "auth_success": None},
            {**SSH_ROW, "auth_attempts": 10_000}]
    evs, skips = _events(tmp_path, tsv_log("ssh", rows) if form == "tsv" else json_log(rows))
    outcomes = [e.outcome for e in evs]
    assert outcomes == ["failure"] * 3 + ["success"] + ["failure"] * MAX_ATTEMPTS
    assert {(e.kind, e.proto, e.src, e.dst, e.dport) for e in evs} == {(AUTH, "ssh", "192.0.2.7", "10.0.0.9", 22)}
    assert evs[0].attrs is not None and evs[0].attrs["layer"] == "zeek"
    assert skips.ignored["unused Zeek record"] == 1


@pytest.mark.parametrize("form", ["tsv", "json"])
def test_notice_becomes_an_ids_style_finding(tmp_path: Path, form: str) -> None:
    (ev,), _ = _events(tmp_path, tsv_log("notice", [NOTICE_ROW]) if form == "tsv" else json_log([NOTICE_ROW]))
    assert (ev.kind, ev.source, ev.src, ev.dst) == (DETECTION, "zeek:notice", "192.0.2.7", "10.0.0.9")
    assert ev.attrs is not None
    assert (ev.attrs["signature"], ev.attrs["engine"], ev.attrs["severity"]) == ("Scan::Port_Scan", "zeek", 2)
    assert ev.raw == "Scan::Port_Scan: 192.0.2.7 scanned at least 15 unique ports"


def test_notice_severity_and_sampled_server(tmp_path: Path) -> None:
    rows = [{**NOTICE_ROW, "note": "CaptureLoss::Too_Much_Loss", "dst": None},
            {**NOTICE_ROW, "note": "SSL::Invalid_Server_Cert", "dst": None},
            {**NOTICE_ROW, "note": "SSH::Password_Guessing", "dst": None,
             "sub": "Sampled servers:  10.0.0.9, 10.0.0.9"},
            {**NOTICE_ROW, "note": "SSH::Password_Guessing", "dst": None, "sub": "Sampled servers: 10.0.0.9, 10.0.0.8"}]
    evs, _ = _events(tmp_path, tsv_log("notice", rows))
    assert [(e.attrs or {})["severity"] for e in evs] == [4, 3, 2, 2]
    assert [e.dst for e in evs] == [None, None, "10.0.0.9", None]


def test_weird_is_a_log_event_never_a_finding(tmp_path: Path) -> None:
    (ev,), _ = _events(tmp_path, tsv_log("weird", [WEIRD_ROW]))
    assert (ev.kind, ev.source) == (LOG, "zeek:weird")
    assert ev.attrs is not None and ev.attrs["weird"] == "bad_TCP_checksum"


def test_tsv_and_json_forms_agree_on_every_log(tmp_path: Path) -> None:
    for path, row in ROWS.items():
        tsv, _ = _events(tmp_path, tsv_log(path, [row]), f"{path}.log")
        js, _ = _events(tmp_path, json_log([row]), f"{path}.json")
        assert tsv and len(tsv) == len(js) and all(_same(a, b) for a, b in zip(tsv, js, strict=True)), path


def test_json_with_path_nested_id_and_iso_times(tmp_path: Path) -> None:
    rec = {"_path": "conn", "ts": "2023-11-14T22:13:20.250000Z", "uid": "C1", "proto": "tcp", "conn_state": "S0",
           "id": {"orig_h": "10.0.0.5", "orig_p": 1, "resp_h": "10.0.0.9", "resp_p": 2}}
    (ev,), _ = _events(tmp_path, json.dumps(rec).encode() + b"\n")
    assert (ev.time, ev.src, ev.dport, ev.flags) == (T0, "10.0.0.5", 2, SYN)


def test_escapes_unset_empty_and_sets(tmp_path: Path) -> None:
    row = {**WEIRD_ROW, "name": "tab\there-\\x41 é", "addl": "-"}
    (ev,), _ = _events(tmp_path, tsv_log("weird", [row]))
    assert ev.attrs is not None and ev.attrs["weird"] == "tab\there-\\x41 é" and ev.attrs["addl"] == "-"
    # Bytes that are not UTF-8 stay visible as \\xHH text, as Zeek's JSON writer shows them.
    data = tsv_log("weird", [WEIRD_ROW]).replace(b"bad_TCP_checksum", b"bad\\xff\\x00")
    (ev,), _ = _events(tmp_path, data)
    assert ev.attrs is not None and ev.attrs["weird"] == "bad\\xff\x00"


def test_sniffs_tsv_json_and_leaves_eve_alone(tmp_path: Path) -> None:
    for name, data in [("a", tsv_log("conn", [CONN])), ("b", json_log([CONN])), ("c", json_log([NOTICE_ROW])),
                       ("d", json_log([{**WEIRD_ROW, "addl": '"timestamp" in a value'}]))]:
        (tmp_path / name).write_bytes(data)
        assert sniff(tmp_path / name) == ZEEK, name
    (tmp_path / "e").write_text('{"timestamp": "2026-01-01T00:00:00Z", "event_type": "flow", "uid": "x", "ts": 1}\n')
    assert sniff(tmp_path / "e") == EVE
    fmt, events = open_file(tmp_path / "a", fixed_clock(), new_skips())
    assert fmt == ZEEK and len(list(events)) == 1


def test_followed_lines_keep_the_header_across_calls() -> None:
    data = tsv_log("conn", [CONN, {**CONN, "uid": "C2"}]).split(b"\n")
    make = FORMATS[ZEEK].lines
    assert make is not None
    decoder = make("file:conn.log", fixed_clock(), new_skips())
    first = list(decoder.events(data[:9], 1))
    second = list(decoder.events(data[9:], 10))
    assert [e.ref for e in first + second] == ["file:conn.log:9", "file:conn.log:10"]


def test_rows_without_a_header_and_bad_headers_are_counted() -> None:
    skips = new_skips()
    lines = tsv_log("conn", [CONN]).split(b"\n")
    decoder = ZeekLines("t", skips, fixed_clock())
    assert list(decoder.events(lines[8:9])) == []  # a followed file's appended row, its header unseen
    assert skips.counts["Zeek TSV row before its #fields header"] == 1
    assert list(decoder.events([b"#fields\tts\tts", lines[8]])) == []
    assert skips.counts["bad Zeek header"] == 1 and skips.counts["Zeek TSV row before its #fields header"] == 2
    assert list(decoder.events([b"#separator \\x09\\x09"])) == [] and skips.counts["bad Zeek header"] == 2


@pytest.mark.parametrize("line", [
    b"1700000000.0\tonly-two", b"{not json", b"[1, 2]", b"[" * 5000, b'{"ts": "soon", "conn_state": "S0"}',
    b'{"ts": NaN, "conn_state": "S0"}', b'{"ts": 1e400, "conn_state": "S0"}', b'{"ts": 1' + b"0" * 5000 + b"}",
    b'{"ts": true, "note": "X"}', b'{"ts": 1700000000, "note": ""}', b"\xff\xfe\x00garbage",
])
def test_hostile_lines_are_counted_never_raised(line: bytes) -> None:
    skips = new_skips()
    head = tsv_log("conn", []).split(b"\n")[:8]
    assert list(ZeekLines("t", skips, fixed_clock()).events([*head, line])) == []
    assert skips.total == 1, dict(skips.counts)


def test_overlong_line_and_out_of_range_time(tmp_path: Path) -> None:
    data = tsv_log("conn", [CONN, {**CONN, "ts": 100.0}, {**CONN, "ts": 4e9}])
    data = data.replace(b"#close", b"1700000000.0\t" + b"A" * (MAX_RECORD + 10) + b"\n#close")
    evs, skips = _events(tmp_path, data)
    now = fixed_clock()().timestamp()
    assert [e.time for e in evs] == [T0, now, now]
    assert skips.counts == {"overlong Zeek record": 1}
    assert skips.repaired["timestamp out of range, set to receipt time"] == 2


# --- Zeek's own logs, from ../shared/telemetry ---

BASELINES = "ids/zeek-expected"


def test_masked_baselines_lose_nothing(shared_telemetry: Path, tmp_path: Path) -> None:
    """btest masks every time; each row is then a counted bad record, never silently dropped."""
    for rel, rows in [("scripts.base.protocols.ssh.basic/conn.log", 25), ("scripts.base.protocols.ssh.basic/ssh.log",
                                                                          22)]:
        path = shared_telemetry / BASELINES / rel
        assert sniff(path) == ZEEK
        evs, skips = list(read_zeek(path, skips=(s := new_skips()), now=fixed_clock())), s
        assert evs == [] and skips.counts["bad Zeek record"] == rows


def test_real_conn_and_ssh_logs(shared_telemetry: Path, tmp_path: Path) -> None:
    base, pcap = shared_telemetry / BASELINES / "scripts.base.protocols.ssh.basic", shared_telemetry / "pcaps/ssh.pcap"
    conn, skips = _events(tmp_path, unmask(base / "conn.log", pcap, tmp_path / "c").read_bytes(), "conn.log")
    assert len(conn) == 25 and skips.total == 0
    first = conn[0]
    assert (first.src, first.sport, first.dst, first.dport, first.flags) == ("192.168.1.79", 51880, "131.159.21.1",
                                                                             22, SYN | ACK | FIN)
    assert first.attrs is not None and (first.attrs["packets"], first.attrs["bytes"]) == (45, 3981 + 3549)
    udp = [e for e in conn if e.proto == "udp"]
    assert len(udp) == 2 and all(e.flags == 0 and (e.attrs or {})["conn_state"] == "S0" for e in udp)
    ssh, skips = _events(tmp_path, unmask(base / "ssh.log", pcap, tmp_path / "s").read_bytes(), "ssh.log")
    # 22 rows: 10 successes, 2 failures (6 and 1 attempts), 10 without an auth result (SSH-1 and one unknown).
    assert sum(e.outcome == "success" for e in ssh) == 10
    assert [(e.src, e.dst) for e in ssh if e.outcome == "failure"] == [("192.168.1.32", "128.2.10.238")] * 6 + [
        ("192.168.1.32", "131.103.20.168")]
    assert skips.ignored["unused Zeek record"] == 10 and skips.total == 0


def test_prime_reads_the_header_a_follower_started_past() -> None:
    data = tsv_log("conn", [CONN])
    lines = data.split(b"\n")
    decoder = ZeekLines("t", new_skips(), fixed_clock())
    decoder.prime(data[:4096])
    (ev,) = decoder.events(lines[8:9], 9)
    assert ev.attrs is not None and ev.attrs["uid"] == "CabC1" and decoder.skips.total == 0
    json_decoder = ZeekLines("j", new_skips(), fixed_clock())
    json_decoder.prime(json_log([CONN]))
    assert json_decoder.header is None
