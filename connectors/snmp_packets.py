"""The header of an SNMP message (v1, v2c, v3) from a UDP payload: a small, bounded BER reader.

Only what a detector needs is read: the version, the community (v1/v2c) or USM user name (v3), the
PDU type, request-id, error-status and error-index, and the first few varbind OIDs. Values are
never decoded. Every length is checked against the bytes that are there, so hostile input raises
`SnmpDecodeError` (a ValueError) and never anything else; `snmp_attrs` turns that into None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SNMP_PORTS = frozenset({161, 162})

# Context-specific constructed tags of the PDUs (RFC 3416, RFC 1157 for the v1 trap).
PDU_TYPES = {
    0xA0: "get", 0xA1: "getnext", 0xA2: "response", 0xA3: "set", 0xA4: "trap",
    0xA5: "getbulk", 0xA6: "inform", 0xA7: "trapv2", 0xA8: "report",
}
REQUESTS = frozenset({"get", "getnext", "getbulk", "set"})

# error-status values (RFC 3416 section 3).
ERROR_NAMES = {
    0: "noError", 1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr", 6: "noAccess",
    7: "wrongType", 8: "wrongLength", 9: "wrongEncoding", 10: "wrongValue", 11: "noCreation",
    12: "inconsistentValue", 13: "resourceUnavailable", 14: "commitFailed", 15: "undoFailed",
    16: "authorizationError", 17: "notWritable", 18: "inconsistentName",
}

# usmStats counters an agent reports when a v3 request fails authentication (RFC 3414 section 5).
USM_STATS = {
    "1.3.6.1.6.3.15.1.1.1.0": "unsupportedSecLevels",
    "1.3.6.1.6.3.15.1.1.2.0": "notInTimeWindows",
    "1.3.6.1.6.3.15.1.1.3.0": "unknownUserNames",
    "1.3.6.1.6.3.15.1.1.4.0": "unknownEngineIDs",
    "1.3.6.1.6.3.15.1.1.5.0": "wrongDigests",
    "1.3.6.1.6.3.15.1.1.6.0": "decryptionErrors",
}

MAX_OIDS = 4
MAX_COMMUNITY = 64  # characters of a community or user name kept
MAX_DEPTH_BYTES = 65_535  # an SNMP message never exceeds a UDP datagram

_SEQUENCE, _INTEGER, _OCTETS, _OID = 0x30, 0x02, 0x04, 0x06


class SnmpDecodeError(ValueError):
    """The bytes are not an SNMP message this reader understands."""


@dataclass(frozen=True, slots=True)
class SnmpHeader:
    """What one SNMP message says about itself."""

    version: int  # 0 = v1, 1 = v2c, 3 = v3 (the wire values)
    pdu: str  # one of PDU_TYPES' values, or "encrypted" for a v3 message with privacy
    community: str | None = None  # v1/v2c
    user: str | None = None  # v3 USM user name
    request_id: int | None = None
    error_status: int | None = None
    error_index: int | None = None
    oids: tuple[str, ...] = ()

    @property
    def usm_report(self) -> str | None:
        """For a v3 report, which usmStats counter it carries (e.g. "unknownUserNames"), else None."""
        if self.pdu != "report":
            return None
        for oid in self.oids:
            name = USM_STATS.get(oid)
            if name is not None:
                return name
        return None

    def as_attrs(self) -> dict[str, Any]:
        """The form detectors read in `Event.attrs["snmp"]`."""
        out: dict[str, Any] = {"version": self.version, "pdu": self.pdu}
        for name in ("community", "user", "request_id", "error_status", "error_index"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.error_status is not None and self.pdu in ("response", "report"):
            out["error"] = ERROR_NAMES.get(self.error_status, str(self.error_status))
        if self.oids:
            out["oids"] = list(self.oids)
        report = self.usm_report
        if report is not None:
            out["usm_report"] = report
        return out


class _Reader:
    """A cursor over a bounded slice of bytes reading BER type-length-value items."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def more(self) -> bool:
        return self.pos < self.end

    def tlv(self) -> tuple[int, int, int]:
        """Read one header: (tag, start of value, end of value); the cursor moves past the value."""
        buf, pos, end = self.buf, self.pos, self.end
        if pos + 2 > end:
            raise SnmpDecodeError("truncated BER header")
        tag = buf[pos]
        if tag & 0x1F == 0x1F:
            raise SnmpDecodeError("long-form BER tags are not used by SNMP")
        first = buf[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        else:
            n = first & 0x7F
            if n == 0 or n > 3:
                raise SnmpDecodeError(f"unsupported BER length form 0x{first:02x}")
            if pos + n > end:
                raise SnmpDecodeError("truncated BER length")
            length = int.from_bytes(buf[pos:pos + n], "big")
            pos += n
        if length > end - pos:
            raise SnmpDecodeError(f"BER length {length} runs past the {end - pos} bytes left")
        self.pos = pos + length
        return tag, pos, pos + length

    def expect(self, want: int, what: str) -> tuple[int, int]:
        """Read one item that must carry tag `want`; returns its value's (start, end)."""
        tag, start, stop = self.tlv()
        if tag != want:
            raise SnmpDecodeError(f"{what}: expected tag 0x{want:02x}, found 0x{tag:02x}")
        return start, stop

    def integer(self, what: str) -> int:
        start, stop = self.expect(_INTEGER, what)
        if stop == start or stop - start > 9:
            raise SnmpDecodeError(f"{what}: integer of {stop - start} bytes")
        return int.from_bytes(self.buf[start:stop], "big", signed=True)

    def octets(self, what: str) -> bytes:
        start, stop = self.expect(_OCTETS, what)
        return self.buf[start:stop]

    def inner(self, want: int, what: str) -> _Reader:
        start, stop = self.expect(want, what)
        return _Reader(self.buf, start, stop)


def _oid(raw: bytes) -> str:
    if not raw:
        raise SnmpDecodeError("empty OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for i, byte in enumerate(raw):
        value = (value << 7) | (byte & 0x7F)
        if byte & 0x80:
            if value.bit_length() > 64:
                raise SnmpDecodeError("OBJECT IDENTIFIER arc too large")
            continue
        if not arcs and i < len(raw):
            first = min(value // 40, 2)
            arcs.extend((first, value - 40 * first))
        else:
            arcs.append(value)
        value = 0
    if raw[-1] & 0x80:
        raise SnmpDecodeError("truncated OBJECT IDENTIFIER")
    return ".".join(map(str, arcs))


def _text(raw: bytes) -> str:
    return raw[:MAX_COMMUNITY].decode("utf-8", "backslashreplace")


def _pdu(r: _Reader) -> tuple[str, int | None, int | None, int | None, tuple[str, ...]]:
    tag, start, stop = r.tlv()
    name = PDU_TYPES.get(tag)
    if name is None:
        raise SnmpDecodeError(f"unknown PDU tag 0x{tag:02x}")
    body = _Reader(r.buf, start, stop)
    if name == "trap":  # v1 Trap-PDU: enterprise, agent-addr, generic, specific, time-stamp, varbinds
        enterprise = _oid(r.buf[slice(*body.expect(_OID, "trap enterprise"))])
        return name, None, None, None, (enterprise,)
    request_id = body.integer("request-id")
    error_status = body.integer("error-status")
    error_index = body.integer("error-index")
    oids: list[str] = []
    if body.more():
        varbinds = body.inner(_SEQUENCE, "varbind list")
        while varbinds.more() and len(oids) < MAX_OIDS:
            vb = varbinds.inner(_SEQUENCE, "varbind")
            oids.append(_oid(r.buf[slice(*vb.expect(_OID, "varbind name"))]))
    return name, request_id, error_status, error_index, tuple(oids)


def decode_snmp(payload: bytes) -> SnmpHeader:
    """Decode the header of one SNMP message; SnmpDecodeError if it is not one."""
    if len(payload) > MAX_DEPTH_BYTES:
        raise SnmpDecodeError(f"{len(payload)} bytes is larger than any UDP datagram")
    msg = _Reader(payload).inner(_SEQUENCE, "message")
    version = msg.integer("version")
    if version in (0, 1):
        community = _text(msg.octets("community"))
        pdu, rid, status, index, oids = _pdu(msg)
        return SnmpHeader(version, pdu, community=community, request_id=rid, error_status=status,
                          error_index=index, oids=oids)
    if version != 3:
        raise SnmpDecodeError(f"unknown SNMP version {version}")
    header = msg.inner(_SEQUENCE, "msgGlobalData")
    header.integer("msgID")
    header.integer("msgMaxSize")
    flags = header.octets("msgFlags")
    user: str | None = None
    sec = msg.octets("msgSecurityParameters")
    try:
        usm = _Reader(sec).inner(_SEQUENCE, "USM parameters")
        usm.octets("msgAuthoritativeEngineID")
        usm.integer("msgAuthoritativeEngineBoots")
        usm.integer("msgAuthoritativeEngineTime")
        user = _text(usm.octets("msgUserName"))
    except SnmpDecodeError:
        user = None  # another security model: the rest of the header still tells the PDU
    if flags[:1] and flags[0] & 0x02:  # privFlag: the scoped PDU is encrypted
        msg.octets("encryptedPDU")
        return SnmpHeader(3, "encrypted", user=user)
    scoped = msg.inner(_SEQUENCE, "scopedPDU")
    scoped.octets("contextEngineID")
    scoped.octets("contextName")
    pdu, rid, status, index, oids = _pdu(scoped)
    return SnmpHeader(3, pdu, user=user, request_id=rid, error_status=status, error_index=index, oids=oids)


def snmp_attrs(payload: bytes) -> dict[str, Any] | None:
    """`decode_snmp(payload).as_attrs()`, or None when the payload is not SNMP."""
    try:
        return decode_snmp(payload).as_attrs()
    except SnmpDecodeError:
        return None
