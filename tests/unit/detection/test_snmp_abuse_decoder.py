"""The SNMP header decoder: hostile bytes, and agreement with scapy's SNMP layer on real captures."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether
from scapy.layers.snmp import SNMP
from scapy.utils import RawPcapReader

from watchstander.connectors.snmp_packets import PDU_TYPES, SNMP_PORTS, SnmpDecodeError, decode_snmp, snmp_attrs

CAPTURES = Path(__file__).resolve().parents[2] / "data" / "captures" / "snmp"
# scapy's class names for the PDUs, by our names.
SCAPY_PDU = {"get": "SNMPget", "getnext": "SNMPnext", "response": "SNMPresponse", "set": "SNMPset",
             "trap": "SNMPtrapv1", "getbulk": "SNMPbulk", "inform": "SNMPinform", "trapv2": "SNMPtrapv2"}
SHARED_PCAPS = ("snmpv1_get.pcap", "snmpwalk-short.pcap", "snmpv2_get_next.pcap", "snmpv2_get_bulk.pcap",
                "snmpv1_set.pcap", "snmpv1_trap.pcap")


@functools.cache
def payloads(path: Path) -> list[bytes]:
    out = []
    with RawPcapReader(str(path)) as reader:  # type: ignore[no-untyped-call]
        for data, _meta in reader:
            udp = Ether(data).getlayer(UDP)
            if udp is not None and (udp.sport in SNMP_PORTS or udp.dport in SNMP_PORTS):
                out.append(bytes(udp.payload))
    return out


def assert_agrees_with_scapy(payload: bytes) -> None:
    ours = decode_snmp(payload)
    theirs = SNMP(payload)
    assert ours.version == int(theirs.version.val)
    assert ours.community == theirs.community.val.decode("utf-8", "backslashreplace")
    pdu = theirs.PDU
    assert type(pdu).__name__ == SCAPY_PDU[ours.pdu]
    if ours.pdu != "trap":
        assert ours.request_id == int(pdu.id.val)
        if ours.pdu != "getbulk":
            assert ours.error_status == int(pdu.error.val)
            assert ours.error_index == int(pdu.error_index.val)
        assert list(ours.oids) == [vb.oid.val for vb in pdu.varbindlist[: len(ours.oids)]]


@pytest.mark.parametrize("name", ["walk", "guess", "set", "sweep"])
def test_recorded_net_snmp_v1_v2c_messages_decode_as_scapy_reads_them(name: str) -> None:
    messages = payloads(CAPTURES / f"{name}.pcap")
    assert messages
    checked = 0
    for payload in messages:
        if decode_snmp(payload).version == 3:
            continue  # scapy has no SNMPv3
        assert_agrees_with_scapy(payload)
        checked += 1
    assert checked >= 6


@pytest.mark.shared
@pytest.mark.parametrize("name", SHARED_PCAPS)
def test_public_captures_decode_as_scapy_reads_them(shared_telemetry: Path, name: str) -> None:
    path = shared_telemetry / "snmp" / "pcaps" / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    messages = payloads(path)
    assert messages
    for payload in messages[:80]:  # scapy's decoding is the slow part; 80 cover every PDU kind here
        assert_agrees_with_scapy(payload)


def test_v3_unknown_user_reports_are_recognised() -> None:
    headers = [decode_snmp(p) for p in payloads(CAPTURES / "guess.pcap")]
    v3 = [h for h in headers if h.version == 3]
    reports = [h.usm_report for h in v3 if h.pdu == "report"]
    assert reports.count("unknownUserNames") == 3 and reports.count("unknownEngineIDs") == 3
    assert {h.user for h in v3 if h.pdu == "get" and h.user} == {"admin", "root", "snmpuser"}


def test_v2c_set_refused_as_no_access() -> None:
    attrs = [snmp_attrs(p) for p in payloads(CAPTURES / "set.pcap")]
    responses = [a for a in attrs if a and a["pdu"] == "response"]
    assert [r["error"] for r in responses] == ["noError", "noAccess", "noSuchName"]


def test_v3_encrypted_scoped_pdu(shared_telemetry: Path) -> None:
    path = shared_telemetry / "snmp" / "pcaps" / "snmpv3_get_next.pcap"
    if not path.exists():
        pytest.skip(f"{path} absent")
    headers = [decode_snmp(p) for p in payloads(path)]
    assert all(h.version == 3 for h in headers)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_bytes_raise_only_decode_errors(data: bytes) -> None:
    try:
        header = decode_snmp(data)
    except SnmpDecodeError:
        assert snmp_attrs(data) is None
    else:
        assert header.pdu in (*PDU_TYPES.values(), "encrypted")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_real_messages_never_crash(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(payloads(CAPTURES / "guess.pcap") + payloads(CAPTURES / "set.pcap")))
    raw = bytearray(base)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        try:
            decode_snmp(candidate)
        except SnmpDecodeError:
            pass


def test_length_claims_beyond_the_datagram_are_rejected() -> None:
    with pytest.raises(SnmpDecodeError, match="length form"):
        decode_snmp(b"\x30\x84\xff\xff\xff\xff")  # no SNMP message needs a 4-byte length
    with pytest.raises(SnmpDecodeError, match="runs past"):
        decode_snmp(b"\x30\x82\x10\x00\x02\x01\x01")
    with pytest.raises(SnmpDecodeError):
        decode_snmp(b"")
    with pytest.raises(SnmpDecodeError, match="version"):
        decode_snmp(b"\x30\x03\x02\x01\x07")
