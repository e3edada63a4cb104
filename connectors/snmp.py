"""SNMP GET and SET on devices with pysnmp's asyncio API: SNMPv3 authPriv by default, 2c on request.

Each call builds its own SnmpEngine (in a worker thread: loading its MIBs takes ~0.1 s) and closes
its transport before returning, so calls may come from any event loop, one after another or at the
same time, and nothing outlives the call. `timeout_s` bounds the whole call, engine discovery and
retries included.

What the agent reports is translated here, once:

    no answer                          DeviceTimeout
    wrong auth key or auth protocol    AuthenticationFailed  (report: wrongDigest)
    unknown user, security level       AuthenticationFailed  (report: unknownUserName, ...)
    wrong privacy key or protocol      AuthenticationFailed  (see below)
    noSuchObject/Instance, endOfMib    DeviceRefused "no such object 1.3.6..."
    a SET's errorStatus                DeviceRefused naming the status (notWritable, wrongType, ...)
    anything else                      DeviceProtocolError

An agent cannot tell a wrong privacy key from garbage: the message authenticates, decrypts into
noise and is dropped without a report (net-snmp counts it in snmpInASNParseErrs), so the caller
sees silence. When an SNMPv3 request goes unanswered, one authNoPriv probe with the same user and
auth key follows: an answer to it (even authorizationError) proves the agent is there and the auth
key right, so the privacy key or protocol is what was refused. The probe reads sysUpTime only.

AES-192/256 use the Blumenthal key extension (net-snmp's "AES-192"/"AES-256"); with SHA-256 or
stronger the hash is long enough that Reeder's (Cisco's) extension gives the same key.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pyasn1.type import univ  # pysnmp's ASN.1 layer: some answers decode to its base types
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    get_cmd,
    set_cmd,
    usmAesBlumenthalCfb192Protocol,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb128Protocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
)
from pysnmp.proto import errind, rfc1902, rfc1905

from .errors import (
    AuthenticationFailed,
    DeviceError,
    DeviceProtocolError,
    DeviceRefused,
    DeviceTimeout,
    DeviceUnreachable,
)

log = logging.getLogger(__name__)

AuthProtocol = Literal["SHA-256", "SHA-384", "SHA-512"]
PrivProtocol = Literal["AES-128", "AES-192", "AES-256"]
SetType = Literal["integer", "unsigned", "octet-string", "ip-address"]

AUTH_PROTOCOLS: dict[str, tuple[int, ...]] = {
    "SHA-256": usmHMAC192SHA256AuthProtocol,
    "SHA-384": usmHMAC256SHA384AuthProtocol,
    "SHA-512": usmHMAC384SHA512AuthProtocol,
}
PRIV_PROTOCOLS: dict[str, tuple[int, ...]] = {
    "AES-128": usmAesCfb128Protocol,
    "AES-192": usmAesBlumenthalCfb192Protocol,
    "AES-256": usmAesBlumenthalCfb256Protocol,
}
DEFAULT_PORT = 161
MIN_KEY_LENGTH = 8  # RFC 3414 11.2: USM pass phrases are at least 8 octets
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*)){1,127}")
_SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
# The first try gets most of the budget; the privacy probe the rest (see the module docstring).
_FIRST_TRY_SHARE = 0.6

_AUTH_INDICATIONS: dict[type[errind.ErrorIndication], str] = {
    errind.WrongDigest: "wrong authentication key or protocol (wrong digest)",
    errind.AuthenticationFailure: "wrong authentication key or protocol",
    errind.AuthenticationError: "wrong authentication key or protocol",
    errind.UnknownUserName: "unknown user name",
    errind.UnknownSecurityName: "unknown user name",
    errind.UnsupportedSecurityLevel: "the user is not configured for authPriv",
    errind.DecryptionError: "wrong privacy key or protocol (decryption error)",
    errind.UnknownCommunityName: "unknown community",
}


@dataclass(frozen=True)
class SnmpV3Credentials:
    """An SNMPv3 USM user for authPriv; the keys never appear in repr or str."""

    user: str
    auth_protocol: AuthProtocol
    auth_key: str = field(repr=False)
    priv_protocol: PrivProtocol
    priv_key: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.user:
            raise ValueError("SNMPv3 user must not be empty")
        if self.auth_protocol not in AUTH_PROTOCOLS:
            raise ValueError(f"unsupported auth protocol {self.auth_protocol!r} (use one of {', '.join(AUTH_PROTOCOLS)})")
        if self.priv_protocol not in PRIV_PROTOCOLS:
            raise ValueError(f"unsupported privacy protocol {self.priv_protocol!r} (use one of {', '.join(PRIV_PROTOCOLS)})")
        if len(self.auth_key.encode()) < MIN_KEY_LENGTH or len(self.priv_key.encode()) < MIN_KEY_LENGTH:
            raise ValueError(f"SNMPv3 auth and privacy keys must be at least {MIN_KEY_LENGTH} characters")


@dataclass(frozen=True)
class SnmpTarget:
    """One device as the SNMP connector sees it; `name` (the inventory name) is in every error."""

    name: str
    address: str
    port: int = DEFAULT_PORT
    v3: SnmpV3Credentials | None = None
    community: str | None = field(default=None, repr=False)  # SNMPv2c, only when the config opts in
    retries: int = 1

    def __post_init__(self) -> None:
        if (self.v3 is None) == (self.community is None):
            raise ValueError(f"{self.name}: set exactly one of v3 credentials or a v2c community")
        if self.community == "":
            raise ValueError(f"{self.name}: the v2c community must not be empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"{self.name}: port {self.port} out of range")
        if self.retries < 0:
            raise ValueError(f"{self.name}: retries must not be negative")

    @property
    def endpoint(self) -> str:
        """address:port (IPv6 in brackets), for messages."""
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class SnmpVarBind:
    """One answered variable: numeric OID, SMI type name and a plain value.

    `type` is one of Integer, OctetString, IpAddress, Counter32, Gauge32 (also Unsigned32),
    TimeTicks, Counter64, ObjectIdentifier, Opaque. OctetString values are text when they are
    printable UTF-8 and "0x" + hex otherwise; IpAddress and ObjectIdentifier are dotted text.
    """

    oid: str
    type: str
    value: int | str


async def snmp_get(target: SnmpTarget, oids: Sequence[str], *, timeout_s: float) -> list[SnmpVarBind]:
    """Read numeric `oids` in one GET; a missing object is DeviceRefused naming its OID."""
    if not oids:
        raise ValueError("snmp_get needs at least one OID")
    names = [_checked_oid(oid) for oid in oids]
    answer = await _call(target, "get", [(name, None) for name in names], timeout_s)
    result: list[SnmpVarBind] = []
    for oid, value in answer:
        if isinstance(value, (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)):
            raise DeviceRefused(target.name, f"no such object {oid} ({type(value).__name__})")
        result.append(_varbind(target, oid, value))
    return result


async def snmp_set(
    target: SnmpTarget, oid: str, value_type: SetType, value: int | str, *, timeout_s: float
) -> SnmpVarBind:
    """Write one OID; the agent's refusal (notWritable, wrongType, ...) is DeviceRefused."""
    name = _checked_oid(oid)
    answer = await _call(target, "set", [(name, _set_value(value_type, value))], timeout_s)
    if len(answer) != 1:
        raise DeviceProtocolError(target.name, f"SET {name} answered with {len(answer)} variables, expected 1")
    return _varbind(target, *answer[0])


def _checked_oid(oid: str) -> str:
    if not _OID.fullmatch(oid):
        raise ValueError(f"not a numeric OID: {oid!r}")
    return oid


def _set_value(value_type: SetType, value: int | str) -> Any:
    if value_type in ("integer", "unsigned"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"value_type {value_type} needs an integer, got {type(value).__name__}")
        return rfc1902.Integer32(value) if value_type == "integer" else rfc1902.Unsigned32(value)
    if not isinstance(value, str):
        raise TypeError(f"value_type {value_type} needs a string, got {type(value).__name__}")
    if value_type == "octet-string":
        return rfc1902.OctetString(value.encode("utf-8"))
    if value_type == "ip-address":
        return rfc1902.IpAddress(value)
    raise ValueError(f"unknown value_type {value_type!r}")


# A request is a list of (numeric OID, value to set or None to read).
Request = list[tuple[str, Any]]


async def _call(target: SnmpTarget, op: Literal["get", "set"], request: Request, timeout_s: float) -> list[tuple[str, Any]]:
    if timeout_s <= 0:
        raise ValueError("timeout_s must be positive")
    try:
        return await asyncio.wait_for(_exchange(target, op, request, timeout_s), timeout_s)
    except TimeoutError as exc:
        raise _no_answer(target, timeout_s) from exc
    except PySnmpError as exc:
        raise DeviceProtocolError(target.name, f"SNMP {op.upper()} to {target.endpoint} failed: {exc}") from exc
    except OSError as exc:
        raise DeviceUnreachable(target.name, f"cannot reach {target.endpoint}: {exc.strerror or exc}") from exc


async def _exchange(target: SnmpTarget, op: Literal["get", "set"], request: Request, timeout_s: float) -> list[tuple[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    first_share = _FIRST_TRY_SHARE if target.v3 is not None else 1.0
    log.debug("SNMP %s %s on %s (%s)", op.upper(), [oid for oid, _ in request], target.name, target.endpoint)
    varbinds = [ObjectType(ObjectIdentity(oid)) if value is None else ObjectType(ObjectIdentity(oid), value)
                for oid, value in request]
    engine = await asyncio.to_thread(SnmpEngine)
    try:
        transport = await _transport(target, timeout_s * first_share / (target.retries + 1), target.retries)
        command = get_cmd if op == "get" else set_cmd
        indication, status, index, answer = await command(
            engine, _auth_data(target), transport, ContextData(), *varbinds, lookupMib=False
        )
        if isinstance(indication, errind.RequestTimedOut):
            if target.v3 is not None:
                await _probe_privacy(engine, target, deadline)
            raise _no_answer(target, timeout_s)
        if indication is not None:
            raise _indication_error(target, indication)
        if int(status) != 0:
            raise _status_error(target, op, status, int(index), request)
        return [(str(name), value) for name, value in answer]
    finally:
        engine.close_dispatcher()
        await asyncio.sleep(0)  # let the dispatcher's cancelled timer task finish on this loop


async def _probe_privacy(engine: SnmpEngine, target: SnmpTarget, deadline: float) -> None:
    """Raise AuthenticationFailed when the agent answers authNoPriv after ignoring authPriv."""
    assert target.v3 is not None
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining < 0.05:
        return
    creds = target.v3
    probe_user = UsmUserData(creds.user, creds.auth_key, authProtocol=AUTH_PROTOCOLS[creds.auth_protocol])
    transport = await _transport(target, remaining, 0)
    indication, _status, _index, _answer = await get_cmd(
        engine, probe_user, transport, ContextData(), ObjectType(ObjectIdentity(_SYS_UPTIME)), lookupMib=False
    )
    if isinstance(indication, errind.RequestTimedOut):
        return
    if indication is not None and type(indication) in _AUTH_INDICATIONS:
        raise _indication_error(target, indication)
    raise AuthenticationFailed(
        target.name,
        f"{target.endpoint} answers user {creds.user!r} without privacy but ignored the encrypted request: "
        f"the privacy key or protocol ({creds.priv_protocol}) is probably wrong",
    )


async def _transport(target: SnmpTarget, attempt_s: float, retries: int) -> UdpTransportTarget | Udp6TransportTarget:
    kind = Udp6TransportTarget if ":" in target.address else UdpTransportTarget
    try:
        return await kind.create((target.address, target.port), timeout=attempt_s, retries=retries)
    except PySnmpError as exc:  # the name did not resolve
        raise DeviceUnreachable(target.name, f"cannot resolve {target.address}") from exc


def _auth_data(target: SnmpTarget) -> UsmUserData | CommunityData:
    if target.v3 is None:
        assert target.community is not None
        return CommunityData(target.community, mpModel=1)
    creds = target.v3
    return UsmUserData(
        creds.user,
        creds.auth_key,
        creds.priv_key,
        authProtocol=AUTH_PROTOCOLS[creds.auth_protocol],
        privProtocol=PRIV_PROTOCOLS[creds.priv_protocol],
    )


def _no_answer(target: SnmpTarget, timeout_s: float) -> DeviceTimeout:
    hint = " (a wrong v2c community also looks like this)" if target.v3 is None else ""
    return DeviceTimeout(target.name, f"no SNMP answer from {target.endpoint} within {timeout_s:g} s{hint}")


def _indication_error(target: SnmpTarget, indication: errind.ErrorIndication) -> DeviceError:
    reason = _AUTH_INDICATIONS.get(type(indication))
    if reason is not None:
        who = f"SNMPv3 user {target.v3.user!r}" if target.v3 is not None else "the v2c community"
        return AuthenticationFailed(target.name, f"{target.endpoint} refused {who}: {reason}")
    return DeviceProtocolError(target.name, f"{target.endpoint}: SNMP error: {indication}")


def _status_error(target: SnmpTarget, op: str, status: Any, index: int, request: Request) -> DeviceRefused:
    oid = request[index - 1][0] if 0 < index <= len(request) else ""
    about = f" {oid}" if oid else ""
    return DeviceRefused(target.name, f"{op.upper()}{about} refused by {target.endpoint}: {status.prettyPrint()}")


def _varbind(target: SnmpTarget, oid: str, value: Any) -> SnmpVarBind:
    # Subclasses first: IpAddress and Opaque are OctetStrings, the counters are Integers.
    if isinstance(value, rfc1902.IpAddress):
        octets = value.asOctets()
        if len(octets) != 4:
            raise DeviceProtocolError(target.name, f"{oid}: IpAddress of {len(octets)} octets")
        return SnmpVarBind(oid, "IpAddress", ".".join(str(b) for b in octets))
    if isinstance(value, rfc1902.Opaque):
        return SnmpVarBind(oid, "Opaque", "0x" + value.asOctets().hex())
    for kind in (rfc1902.Counter32, rfc1902.Gauge32, rfc1902.TimeTicks, rfc1902.Counter64):
        if isinstance(value, kind):
            return SnmpVarBind(oid, kind.__name__, int(value))
    if isinstance(value, rfc1902.Unsigned32):
        return SnmpVarBind(oid, "Gauge32", int(value))
    if isinstance(value, univ.Integer):
        return SnmpVarBind(oid, "Integer", int(value))
    if isinstance(value, univ.OctetString):
        return SnmpVarBind(oid, "OctetString", _text_or_hex(value.asOctets()))
    if isinstance(value, univ.ObjectIdentifier):
        return SnmpVarBind(oid, "ObjectIdentifier", str(value))
    raise DeviceProtocolError(target.name, f"{oid}: unexpected SNMP type {type(value).__name__}")


def _text_or_hex(octets: bytes) -> str:
    try:
        text = octets.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + octets.hex()
    if all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return text
    return "0x" + octets.hex()
