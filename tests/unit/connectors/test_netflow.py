"""NetFlow v5/v9 and IPFIX decoding: round trips through a test encoder, template state, hostile datagrams."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.netflow_export import (
    IPFIX_FIELDS_V4,
    V9_FIELDS_V4,
    V9_FIELDS_V6,
    Flow,
    data_set,
    ipfix,
    ipfix_options_template,
    template_record,
    template_set,
    v5,
    v9,
    v9_options_template,
    withdrawal,
    write_export_pcap,
)

from watchstander.connectors.events import EARLIEST_TIME, NETWORK, Event
from watchstander.connectors.formats import open_file
from watchstander.connectors.netflow import FlowDecoder, looks_like_export
from watchstander.connectors.netflow_pcap import NETFLOW, is_flow_capture
from watchstander.connectors.skips import SkipCounter
from watchstander.connectors.sniff import sniff

from .conftest import NOW, fixed_clock, new_skips

T0 = int(NOW.timestamp() * 1000) - 3_600_000  # flows an hour before the test clock, in ms
RECEIVED = NOW.timestamp()
EXPORTER = "192.0.2.1"


def decoder(skips: SkipCounter | None = None, **kw: object) -> FlowDecoder:
    """A decoder on the fixed test clock."""
    return FlowDecoder(skips or new_skips("netflow"), fixed_clock(), **kw)  # type: ignore[arg-type]


def flow(i: int = 0, proto: int = 6, v6: bool = False, **kw: object) -> Flow:
    """A plausible flow, varied by `i`."""
    src, dst = (f"2001:db8::{i + 1:x}", "2001:db8::ffff") if v6 else (f"10.0.{i // 250}.{i % 250 + 1}", "10.9.9.9")
    base = {"src": src, "dst": dst, "sport": 40000 + i, "dport": 22 + i, "proto": proto, "flags": 0x12 if proto == 6 else 0,
            "packets": 3 + i, "octets": 180 + i, "start_ms": T0 + i * 1000, "end_ms": T0 + i * 1000 + 1500}
    base.update(kw)
    return Flow(**base)  # type: ignore[arg-type]


def check(ev: Event, f: Flow, time_precision: float = 0.001) -> None:
    """`ev` is `f` by the flow Event contract."""
    assert ev.kind == NETWORK and ev.source == f"netflow:{EXPORTER}"
    assert (ev.src, ev.dst, ev.sport, ev.dport) == (f.src, f.dst, f.sport, f.dport)
    assert ev.proto == {6: "tcp", 17: "udp", 1: "icmp", 132: "sctp", 58: "icmp6"}.get(f.proto, str(f.proto))
    assert ev.flags == (f.flags if f.proto == 6 else 0)
    assert ev.attrs is not None
    assert ev.attrs["flow"] is True and ev.attrs["exporter"] == EXPORTER
    assert (ev.attrs["packets"], ev.attrs["bytes"]) == (f.packets, f.octets)
    assert ev.attrs["duration"] == pytest.approx((f.end_ms - f.start_ms) / 1000, abs=time_precision)
    assert ev.time == pytest.approx(f.end_ms / 1000, abs=time_precision)


# ------------------------------------------------------------------ round trips

def test_v5_round_trip() -> None:
    flows = [flow(i, proto=p) for i, p in enumerate((6, 17, 132, 47, 6))]
    dec = decoder()
    events = dec.decode(v5(flows, T0 + 10_000, 5_000_000, sequence=7), EXPORTER, RECEIVED)
    assert len(events) == len(flows)
    for ev, f in zip(events, flows):
        check(ev, f)
    assert events[3].proto == "47"
    assert dec.skips.total == 0


def test_v5_icmp_type_code_in_dport() -> None:
    f = flow(proto=1, sport=0, dport=3 * 256 + 3)
    (ev,) = decoder().decode(v5([f], T0 + 10_000, 5_000_000), EXPORTER, RECEIVED)
    assert (ev.proto, ev.sport, ev.dport) == ("icmp", 0, 0x303)


def test_v5_uptime_wrap() -> None:
    """Flow times recorded just before the 32-bit millisecond uptime wrapped still come out right."""
    f = flow()
    # uptime at export is small: the flow's uptimes are close to 2**32 (before the wrap)
    (ev,) = decoder().decode(v5([f], f.end_ms + 2_000, 1_000), EXPORTER, RECEIVED)
    check(ev, f)


def test_v9_round_trip_v4_and_v6() -> None:
    boot = T0 - 100_000
    flows4 = [flow(i) for i in range(5)]
    flows6 = [flow(i, proto=17, v6=True) for i in range(3)]
    packet = v9([template_set([template_record(256, V9_FIELDS_V4), template_record(257, V9_FIELDS_V6)]),
                 data_set(256, V9_FIELDS_V4, flows4, boot), data_set(257, V9_FIELDS_V6, flows6, boot)],
                export_ms=T0 + 60_000, uptime_ms=T0 + 60_000 - boot)
    dec = decoder()
    events = dec.decode(packet, EXPORTER, RECEIVED)
    assert len(events) == 8
    for ev, f in zip(events, flows4 + flows6):
        check(ev, f)
    assert dec.counters["templates"] == 2 and dec.skips.total == 0


def test_ipfix_round_trip_enterprise_and_variable_length() -> None:
    flows = [flow(i, proto=6) for i in range(4)]
    msg = ipfix([template_set([template_record(300, IPFIX_FIELDS_V4)], ipfix=True),
                 data_set(300, IPFIX_FIELDS_V4, flows)], export_s=T0 // 1000 + 60)
    dec = decoder()
    events = dec.decode(msg, EXPORTER, RECEIVED)
    assert len(events) == 4
    for ev, f in zip(events, flows):
        check(ev, f)


def test_ipfix_reduced_size_counters_and_seconds() -> None:
    fields = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 3), (1, 5), (150, 4), (151, 4))
    f = flow(start_ms=(T0 // 1000) * 1000, end_ms=(T0 // 1000 + 2) * 1000, packets=70000, octets=2**33)
    msg = ipfix([template_set([template_record(256, fields)], ipfix=True), data_set(256, fields, [f])], T0 // 1000)
    (ev,) = decoder().decode(msg, EXPORTER, RECEIVED)
    assert ev.attrs is not None
    assert (ev.attrs["packets"], ev.attrs["bytes"], ev.time, ev.attrs["duration"]) == (70000, 2**33, f.end_ms / 1000, 2.0)
    assert ev.flags == 0  # no tcpControlBits in the template


def test_ipfix_icmp_type_and_code_fields() -> None:
    fields = ((8, 4), (12, 4), (4, 1), (176, 1), (177, 1), (153, 8))
    f = flow(proto=1)
    body = struct.pack("!4s4sBBBQ", bytes([10, 0, 0, 1]), bytes([10, 9, 9, 9]), 1, 8, 0, f.end_ms)
    msg = ipfix([template_set([template_record(256, fields)], ipfix=True), struct.pack("!HH", 256, 4 + len(body)) + body],
                T0 // 1000)
    (ev,) = decoder().decode(msg, EXPORTER, RECEIVED)
    assert (ev.proto, ev.sport, ev.dport, ev.time) == ("icmp", 0, 8 * 256, f.end_ms / 1000)


def test_ipfix_uptime_times_need_system_init_time() -> None:
    boot = T0 - 50_000
    fields = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (22, 4), (21, 4))
    f = flow()
    opts = ipfix_options_template(400, ((144, 4),), ((160, 8),))
    sysinit = struct.pack("!HHIQ", 400, 16, 1, boot)
    msg = ipfix([opts, sysinit, template_set([template_record(256, fields)], ipfix=True),
                 data_set(256, fields, [f], boot)], T0 // 1000 + 60)
    (ev,) = decoder().decode(msg, EXPORTER, RECEIVED)
    assert ev.time == pytest.approx(f.end_ms / 1000) and ev.attrs is not None
    assert ev.attrs["duration"] == pytest.approx(1.5)


def test_v9_options_template_is_held_and_its_records_ignored() -> None:
    skips = new_skips()
    opts = v9_options_template(260, ((1, 4),), ((34, 4), (35, 1)))
    opt_data = struct.pack("!HH", 260, 4 + 12) + struct.pack("!IIB3x", 0, 100, 1)
    packet = v9([opts, opt_data, template_set([template_record(256, V9_FIELDS_V4)]),
                 data_set(256, V9_FIELDS_V4, [flow()], T0 - 1000)], T0 + 60_000, 61_000)
    events = decoder(skips).decode(packet, EXPORTER, RECEIVED)
    assert len(events) == 1 and skips.total == 0 and skips.ignored["options record"] == 1


# ------------------------------------------------------------------ template state

def test_templates_are_per_exporter_and_domain() -> None:
    dec = decoder()
    fields_a = V9_FIELDS_V4
    fields_b = V9_FIELDS_V6
    dec.decode(v9([template_set([template_record(256, fields_a)])], T0, 1000, source_id=1), EXPORTER, RECEIVED)
    dec.decode(v9([template_set([template_record(256, fields_b)])], T0, 1000, source_id=2), EXPORTER, RECEIVED)
    f4, f6 = flow(), flow(v6=True)
    ev4 = dec.decode(v9([data_set(256, fields_a, [f4], T0 - 1000)], T0 + 60_000, 61_000, source_id=1),
                     EXPORTER, RECEIVED)
    ev6 = dec.decode(v9([data_set(256, fields_b, [f6], T0 - 1000)], T0 + 60_000, 61_000, source_id=2),
                     EXPORTER, RECEIVED)
    check(ev4[0], f4)
    check(ev6[0], f6)
    other = dec.decode(v9([data_set(256, fields_a, [f4], T0 - 1000)], T0 + 60_000, 61_000, source_id=1),
                       "192.0.2.99", RECEIVED)
    assert other == [] and dec.counters["held"] == 1  # another exporter's template 256 is not ours


def test_data_before_template_is_held_then_decoded() -> None:
    dec = decoder()
    flows = [flow(i) for i in range(3)]
    assert dec.decode(v9([data_set(256, V9_FIELDS_V4, flows, T0 - 1000)], T0 + 60_000, 61_000), EXPORTER, RECEIVED) == []
    events = dec.decode(v9([template_set([template_record(256, V9_FIELDS_V4)])], T0 + 60_000, 61_000),
                        EXPORTER, RECEIVED)
    assert len(events) == 3
    for ev, f in zip(events, flows):
        check(ev, f)
    assert dec.skips.total == 0


def test_held_sets_are_bounded_and_counted_as_no_template() -> None:
    skips = new_skips()
    dec = decoder(skips, pending_sets=4)
    for i in range(10):
        dec.decode(v9([data_set(256 + i, V9_FIELDS_V4, [flow()], T0)], T0 + 60_000, 61_000), EXPORTER, RECEIVED)
    assert skips.counts["no template"] == 6
    dec.flush_pending()
    assert skips.counts["no template"] == 10


def test_template_expiry() -> None:
    skips = new_skips()
    dec = decoder(skips, template_ttl_s=60.0)
    dec.decode(v9([template_set([template_record(256, V9_FIELDS_V4)])], T0, 1000), EXPORTER, RECEIVED - 120)
    data = v9([data_set(256, V9_FIELDS_V4, [flow()], T0 - 1000)], T0 + 60_000, 61_000)
    assert dec.decode(data, EXPORTER, RECEIVED) == []
    assert dec.counters["templates_expired"] == 1
    dec.flush_pending()
    assert skips.counts["no template"] == 1


def test_ipfix_withdrawal() -> None:
    dec = decoder()
    f = flow()
    tpl = template_set([template_record(300, IPFIX_FIELDS_V4), template_record(301, IPFIX_FIELDS_V4)], ipfix=True)
    assert len(dec.decode(ipfix([tpl, data_set(300, IPFIX_FIELDS_V4, [f])], T0 // 1000), EXPORTER, RECEIVED)) == 1
    dec.decode(ipfix([withdrawal(300)], T0 // 1000), EXPORTER, RECEIVED)
    assert dec.decode(ipfix([data_set(300, IPFIX_FIELDS_V4, [f])], T0 // 1000), EXPORTER, RECEIVED) == []
    assert len(dec.decode(ipfix([data_set(301, IPFIX_FIELDS_V4, [f])], T0 // 1000), EXPORTER, RECEIVED)) == 1
    dec.decode(ipfix([withdrawal(2)], T0 // 1000), EXPORTER, RECEIVED)  # withdraw all
    assert dec.templates == 0


def test_bad_set_does_not_lose_the_next_set() -> None:
    skips = new_skips()
    bad_template = struct.pack("!HH", 0, 12) + struct.pack("!HH", 256, 50) + b"\0" * 4  # 50 fields announced, 1 sent
    packet = v9([bad_template, template_set([template_record(257, V9_FIELDS_V4)]),
                 data_set(257, V9_FIELDS_V4, [flow()], T0 - 1000)], T0 + 60_000, 61_000)
    events = decoder(skips).decode(packet, EXPORTER, RECEIVED)
    assert len(events) == 1 and skips.counts["truncated template"] == 1


def test_implausible_flow_time_is_repaired_to_export_time() -> None:
    skips = new_skips()
    f = flow(start_ms=0, end_ms=1000)  # 1970: a broken exporter clock
    fields = ((8, 4), (12, 4), (4, 1), (152, 8), (153, 8))
    msg = ipfix([template_set([template_record(256, fields)], ipfix=True), data_set(256, fields, [f])], T0 // 1000)
    (ev,) = decoder(skips).decode(msg, EXPORTER, RECEIVED)
    assert ev.time == T0 // 1000 and skips.repaired["flow time out of range"] == 1


def test_sequence_gaps_are_counted_as_lost() -> None:
    dec = decoder()
    dec.decode(v5([flow()] * 2, T0 + 10_000, 5_000_000, sequence=0), EXPORTER, RECEIVED)
    dec.decode(v5([flow()] * 2, T0 + 10_000, 5_000_000, sequence=5), EXPORTER, RECEIVED)
    assert dec.counters["lost"] == 3


def test_zero_length_template_is_refused() -> None:
    skips = new_skips()
    msg = ipfix([template_set([template_record(256, ((8, 0), (12, 0)))], ipfix=True),
                 struct.pack("!HH", 256, 8) + b"\0" * 4], T0 // 1000)
    assert decoder(skips).decode(msg, EXPORTER, RECEIVED) == []
    assert skips.counts["bad template"] == 1


# ------------------------------------------------------------------ hostile input

def _valid_datagrams() -> list[bytes]:
    boot = T0 - 1000
    return [
        v5([flow(i) for i in range(3)], T0 + 10_000, 5_000_000),
        v9([template_set([template_record(256, V9_FIELDS_V4)]), data_set(256, V9_FIELDS_V4, [flow(), flow(1)], boot)],
           T0 + 60_000, 61_000),
        ipfix([template_set([template_record(300, IPFIX_FIELDS_V4)], ipfix=True),
               data_set(300, IPFIX_FIELDS_V4, [flow(), flow(2)])], T0 // 1000),
    ]


def _well_formed(events: list[Event]) -> None:
    for ev in events:
        assert EARLIEST_TIME <= ev.time <= RECEIVED + 86_400
        assert ev.kind == NETWORK and ev.attrs is not None and ev.attrs["flow"] is True
        assert ev.sport is None or 0 <= ev.sport < 65536
        assert ev.dport is None or 0 <= ev.dport < 65536


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.sampled_from([b"\x00\x05", b"\x00\x09", b"\x00\x0a", b""]))
def test_random_bytes_never_raise(data: bytes, version: bytes) -> None:
    _well_formed(decoder().decode(version + data, EXPORTER, RECEIVED))


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_mutated_datagrams_never_raise(data: st.DataObject) -> None:
    dec = decoder()
    for base in _valid_datagrams():
        raw = bytearray(base)
        for _ in range(data.draw(st.integers(1, 6))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(raw)))
        _well_formed(dec.decode(bytes(raw[:cut]), EXPORTER, RECEIVED))


def test_every_truncation_is_counted_not_raised() -> None:
    for base in _valid_datagrams():
        for cut in range(len(base)):
            skips = new_skips()
            _well_formed(decoder(skips).decode(base[:cut], EXPORTER, RECEIVED))


@given(st.integers(0, 65535), st.integers(0, 65535))
def test_huge_counts_and_lengths_are_bounded(count: int, length: int) -> None:
    skips = new_skips()
    dec = decoder(skips)
    v5_header = struct.pack("!HHIIIIBBH", 5, count, 1000, T0 // 1000, 0, 0, 0, 0, 0)
    dec.decode(v5_header + b"\0" * 96, EXPORTER, RECEIVED)
    template = struct.pack("!HH", 2, 4 + 4 + 4) + struct.pack("!HH", 256, count) + struct.pack("!HH", 8, length)
    dec.decode(ipfix([template], T0 // 1000), EXPORTER, RECEIVED)
    assert dec.templates <= 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.sampled_from([0, 1, 2, 3, 4, 5, 8, 16, 0xFFFF])),
                min_size=1, max_size=40),
       st.binary(max_size=400))
def test_arbitrary_templates_and_data(fields: list[tuple[int, int]], body: bytes) -> None:
    """Any template (zero-length and variable-length fields included) with any data never raises."""
    msg = ipfix([template_set([template_record(256, fields)], ipfix=True), struct.pack("!HH", 256, 4 + len(body)) + body],
                T0 // 1000)
    _well_formed(decoder().decode(msg, EXPORTER, RECEIVED))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1), st.integers(0, 65535),
                          st.integers(0, 65535), st.sampled_from([1, 6, 17, 132]), st.integers(0, 63),
                          st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 3_000_000)),
                min_size=1, max_size=30))
def test_v5_round_trip_property(rows: list[tuple[int, ...]]) -> None:
    import ipaddress

    flows = [Flow(str(ipaddress.IPv4Address(s)), str(ipaddress.IPv4Address(d)), sp if pr != 1 else 0, dp, pr,
                  fl if pr == 6 else 0, pk, by, T0 - dur, T0) for s, d, sp, dp, pr, fl, pk, by, dur in rows]
    events = decoder().decode(v5(flows, T0 + 5000, 4_000_000), EXPORTER, RECEIVED)
    assert len(events) == len(flows)
    for ev, f in zip(events, flows):
        check(ev, f)


# ------------------------------------------------------------------ files

@pytest.mark.slow
def test_export_capture_sniffs_and_replays(tmp_path: Path) -> None:
    path = write_export_pcap(tmp_path / "export.pcap", _valid_datagrams(), exporter=EXPORTER,
                             start=RECEIVED - 60)
    assert sniff(path) == NETFLOW
    skips = new_skips()
    fmt, events = open_file(path, fixed_clock(), skips)
    got = list(events)
    assert fmt == NETFLOW and len(got) == 7 and skips.total == 0
    assert {ev.source for ev in got} == {f"netflow:{EXPORTER}"}


def test_plain_capture_is_not_flow_export(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    # UDP payloads that start with 0x0005 / 0x0009 but are not export datagrams
    pkts = [Ether() / IP() / UDP(dport=9999) / Raw(b"\x00\x05garbage" * 3), Ether() / IP() / TCP(dport=80)]
    wrpcap(str(tmp_path / "p.pcap"), pkts * 4)
    assert sniff(tmp_path / "p.pcap") == "pcap"
    assert not looks_like_export(b"\x00\x09\x00\x01")
    assert not is_flow_capture(b"")


@pytest.mark.shared
def test_shared_captures_still_sniff_as_packets() -> None:
    pcaps = Path(__file__).resolve().parents[4] / "shared" / "telemetry" / "pcaps"
    if not pcaps.is_dir():
        pytest.skip(f"{pcaps} absent (shared telemetry)")
    for p in sorted(pcaps.iterdir()):
        assert sniff(p) == "pcap", p


def test_collector_config_and_registry() -> None:
    from watchstander.agent.config.load import validate_config
    from watchstander.agent.daemon.registry import SOURCE_KINDS
    from watchstander.agent.errors import ConfigError

    cfg = validate_config({"sources": {"netflow": ["127.0.0.1:2055", "[::1]:4739"], "flow": {"template_ttl_s": 60}}})
    assert cfg.sources.netflow == ("127.0.0.1:2055", "[::1]:4739") and cfg.sources.flow.template_ttl_s == 60
    assert "netflow.udp" in SOURCE_KINDS
    with pytest.raises(ConfigError) as err:
        validate_config({"sources": {"flow": {"template_ttl": 60}}})
    assert any("template_ttl" in key for key, _ in err.value.problems)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x0a\x0d\x0d\x0a"]), st.binary(max_size=300))
def test_sniffing_garbage_captures_never_raises(magic: bytes, rest: bytes) -> None:
    assert is_flow_capture(magic + rest) in (True, False)


@pytest.mark.slow
def test_damaged_export_capture_keeps_what_came_before(tmp_path: Path) -> None:
    path = write_export_pcap(tmp_path / "export.pcap", _valid_datagrams(), exporter=EXPORTER, start=RECEIVED - 60)
    data = path.read_bytes()
    path.write_bytes(data[:-40])  # the last frame cut short
    skips = new_skips()
    _, events = open_file(path, fixed_clock(), skips)
    assert len(list(events)) == 5 and skips.counts["truncated capture"] == 1


@pytest.mark.parametrize("fields", [((8, 4), (12, 4), (4, 1), (154, 8), (155, 8)),
                                    ((8, 4), (12, 4), (4, 1), (158, 4), (159, 4))])
def test_ipfix_ntp_and_delta_times(fields: tuple[tuple[int, int], ...]) -> None:
    export_s = T0 // 1000 + 60
    start, end = T0 / 1000, T0 / 1000 + 2.5

    def ntp(t: float) -> int:
        return (int(t) + 2_208_988_800) << 32 | int((t % 1) * 2**32)

    if fields[3][0] == 154:
        body = struct.pack("!4s4sBQQ", bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 17, ntp(start), ntp(end))
    else:
        body = struct.pack("!4s4sBII", bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 17,
                           int((export_s - start) * 1e6), int((export_s - end) * 1e6))
    msg = ipfix([template_set([template_record(256, fields)], ipfix=True), struct.pack("!HH", 256, 4 + len(body)) + body],
                export_s)
    (ev,) = decoder().decode(msg, EXPORTER, RECEIVED)
    assert ev.proto == "udp" and ev.sport is None and ev.attrs is not None
    assert ev.time == pytest.approx(end, abs=1e-3) and ev.attrs["duration"] == pytest.approx(2.5, abs=1e-3)


def test_a_record_ending_after_its_export_time_gets_the_export_time_and_is_counted() -> None:
    """softflowd 1.1.0 sent such records (garbled, 14 h ahead): believed, they end every detector's windows."""
    ahead = T0 + 14 * 3_600_000
    good, bad = flow(0), flow(1, start_ms=ahead - 1000, end_ms=ahead)
    export_s = T0 // 1000 + 60
    for build in ("v5", "ipfix"):
        msg = (v5([good, bad], export_s * 1000, 5_000_000) if build == "v5" else
               ipfix([template_set([template_record(300, IPFIX_FIELDS_V4)], ipfix=True),
                      data_set(300, IPFIX_FIELDS_V4, [good, bad])], export_s=export_s))
        dec = decoder()
        first, second = dec.decode(msg, EXPORTER, RECEIVED)
        check(first, good)
        assert second.time == pytest.approx(export_s, abs=0.001), build
        assert dec.skips.repaired["flow ends after its export time"] == 1, build
        # within the allowed clock skew a record keeps its own time
        skewed = flow(2, start_ms=export_s * 1000, end_ms=export_s * 1000 + 300_000)
        (ev,) = decoder().decode(v5([skewed], export_s * 1000, 5_000_000), EXPORTER, RECEIVED)
        assert ev.time == pytest.approx(skewed.end_ms / 1000, abs=0.001)
