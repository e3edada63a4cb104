"""SNMP notifications (traps and informs) received with pysnmp's asyncio engine: v1/v2c and v3 USM.

`TrapReceiver` listens on one UDP address. Every datagram is looked at before pysnmp sees it:

    not BER / not SNMP                      counted as "malformed", dropped
    v1/v2c with a community not configured  counted as "bad_community", reported to `on_bad_community`
                                            (the address that sent it), dropped unseen by the engine
    v1/v2c with a configured community      handed to the engine
    v3                                      handed to the engine (USM: authentication and privacy)

The engine runs synchronously inside `datagram_received`, so a datagram that it hands no
notification for is counted where it happened: "v3_unprocessed" (an unknown user or engine id, a
wrong key, or an inform's engine-id discovery probe) or "unprocessed" for v1/v2c. Informs are
acknowledged by the engine (a Response PDU back to the sender). Nothing a sender puts in a datagram
escapes the per-datagram barrier: it is counted as "errors" and logged at most once a minute.

Decoded notifications name the standard ones (SNMPv2-MIB coldStart, warmStart,
authenticationFailure; IF-MIB linkDown, linkUp) and carry ifIndex/ifDescr/ifOperStatus when the
varbinds hold them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.error import PyAsn1Error
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as snmp_config
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.error import PySnmpError
from pysnmp.proto import api as snmp_api
from pysnmp.proto import rfc1902
from pysnmp.proto.error import ProtocolError

from .snmp import AUTH_PROTOCOLS, PRIV_PROTOCOLS, AuthProtocol, PrivProtocol, SnmpVarBind, _text_or_hex

log = logging.getLogger(__name__)

SYS_UPTIME_0 = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID_0 = "1.3.6.1.6.3.1.1.4.1.0"
STANDARD_TRAPS: dict[str, str] = {
    "1.3.6.1.6.3.1.1.5.1": "coldStart",
    "1.3.6.1.6.3.1.1.5.2": "warmStart",
    "1.3.6.1.6.3.1.1.5.3": "linkDown",
    "1.3.6.1.6.3.1.1.5.4": "linkUp",
    "1.3.6.1.6.3.1.1.5.5": "authenticationFailure",
}
IF_INDEX = "1.3.6.1.2.1.2.2.1.1."
IF_DESCR = "1.3.6.1.2.1.2.2.1.2."
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7."
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8."
_IF_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}
_ERROR_LOG_EVERY_S = 60.0
RCVBUF = 1 << 20  # bytes asked for the socket's receive buffer
_ENGINE_ID_MIN, _ENGINE_ID_MAX = 5, 32  # RFC 3411 SnmpEngineID: 5..32 octets


@dataclass(frozen=True)
class TrapUser:
    """An SNMPv3 USM user allowed to send notifications (authPriv), bound to the sender's engine id."""

    user: str
    auth_protocol: AuthProtocol
    auth_key: str = field(repr=False)
    priv_protocol: PrivProtocol
    priv_key: str = field(repr=False)
    engine_id: str  # the sender's snmpEngineID in hex (what `snmptrap -e` takes), "0x" optional

    def __post_init__(self) -> None:
        if not self.user:
            raise ValueError("SNMPv3 trap user must not be empty")
        if self.auth_protocol not in AUTH_PROTOCOLS or self.priv_protocol not in PRIV_PROTOCOLS:
            raise ValueError(f"{self.user}: unsupported auth or privacy protocol")
        if len(self.auth_key.encode()) < 8 or len(self.priv_key.encode()) < 8:
            raise ValueError(f"{self.user}: SNMPv3 keys must be at least 8 characters")
        engine_id_octets(self.engine_id)

    @property
    def engine_octets(self) -> bytes:
        """The sender's engine id as bytes."""
        return engine_id_octets(self.engine_id)


def engine_id_octets(text: str) -> bytes:
    """An snmpEngineID written in hex ("0x8000..." or "8000...") as bytes; ValueError if it is not one."""
    digits = text[2:] if text[:2].lower() == "0x" else text
    try:
        octets = bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"engine id {text!r} is not hex") from None
    if not _ENGINE_ID_MIN <= len(octets) <= _ENGINE_ID_MAX:
        raise ValueError(f"engine id {text!r} must be {_ENGINE_ID_MIN} to {_ENGINE_ID_MAX} octets")
    return octets


@dataclass(frozen=True)
class Notification:
    """One trap or inform as received: who sent it, which notification, and its variables."""

    agent: str  # the sender's address
    port: int
    version: str  # "1", "2c" or "3"
    trap_oid: str
    name: str | None  # coldStart, warmStart, linkDown, linkUp, authenticationFailure; None for others
    uptime: int | None  # sysUpTime.0 in hundredths of a second, as the sender put it
    varbinds: tuple[SnmpVarBind, ...]
    if_index: int | None = None
    if_descr: str | None = None
    if_oper_status: str | None = None
    if_admin_status: str | None = None


OnNotification = Callable[[Notification], None]
OnBadCommunity = Callable[[str, int], None]


def _plain(oid: str, value: Any) -> SnmpVarBind:
    """A varbind value as a SnmpVarBind (pysnmp types to plain Python)."""
    if isinstance(value, rfc1902.IpAddress):
        return SnmpVarBind(oid, "IpAddress", ".".join(str(b) for b in value.asOctets()))
    for kind in (rfc1902.Counter32, rfc1902.Gauge32, rfc1902.TimeTicks, rfc1902.Counter64, rfc1902.Unsigned32):
        if isinstance(value, kind):
            return SnmpVarBind(oid, kind.__name__, int(value))
    if isinstance(value, rfc1902.Integer32) or type(value).__name__ == "Integer":
        return SnmpVarBind(oid, "Integer", int(value))
    if isinstance(value, rfc1902.OctetString):
        return SnmpVarBind(oid, "OctetString", _text_or_hex(value.asOctets()))
    if isinstance(value, rfc1902.ObjectName):
        return SnmpVarBind(oid, "ObjectIdentifier", str(value))
    try:
        return SnmpVarBind(oid, type(value).__name__, int(value))
    except (TypeError, ValueError, PyAsn1Error):
        return SnmpVarBind(oid, type(value).__name__, str(value.prettyPrint()))


def decode_notification(agent: str, port: int, version: str, varbinds: Sequence[tuple[Any, Any]]) -> Notification:
    """A notification from its varbinds (SNMPv2 form: sysUpTime.0, snmpTrapOID.0, then the objects)."""
    plain = tuple(_plain(str(name), value) for name, value in varbinds)
    trap_oid = next((str(v.value) for v in plain if v.oid == SNMP_TRAP_OID_0), "")
    uptime = next((v.value for v in plain if v.oid == SYS_UPTIME_0 and isinstance(v.value, int)), None)
    if_index: int | None = None
    descr = oper = admin = None
    for v in plain:
        for column in (IF_INDEX, IF_DESCR, IF_OPER_STATUS, IF_ADMIN_STATUS):
            if v.oid.startswith(column) and v.oid[len(column):].isdigit():
                if_index = int(v.oid[len(column):])
                if column == IF_DESCR:
                    descr = str(v.value)
                elif column == IF_OPER_STATUS and isinstance(v.value, int):
                    oper = _IF_STATUS.get(v.value, str(v.value))
                elif column == IF_ADMIN_STATUS and isinstance(v.value, int):
                    admin = _IF_STATUS.get(v.value, str(v.value))
    return Notification(agent, port, version, trap_oid, STANDARD_TRAPS.get(trap_oid), uptime, plain,
                        if_index, descr, oper, admin)


class _Transport(udp.UdpAsyncioTransport):  # type: ignore[misc]  # pysnmp is untyped
    """pysnmp's UDP transport with our checks in front of the engine (see the module docstring)."""

    receiver: TrapReceiver

    def datagram_received(self, datagram: bytes, transportAddress: Any) -> None:
        self.receiver._datagram(self, datagram, transportAddress)


class _Transport6(udp6.Udp6AsyncioTransport):  # type: ignore[misc]
    receiver: TrapReceiver

    def datagram_received(self, datagram: bytes, transportAddress: Any) -> None:
        self.receiver._datagram(self, datagram, transportAddress)


class TrapReceiver:
    """Traps and informs on one UDP address, decoded into Notifications; every datagram counted."""

    def __init__(self, host: str, port: int, *, communities: Sequence[str], users: Sequence[TrapUser],
                 on_notification: OnNotification, on_bad_community: OnBadCommunity | None = None,
                 rcvbuf: int | None = RCVBUF) -> None:
        if any(not c for c in communities):
            raise ValueError("a trap community must not be empty")
        self.host = host
        self.port = port
        self.communities = frozenset(c.encode("utf-8") for c in communities)
        self.users = tuple(users)
        self.on_notification = on_notification
        self.on_bad_community = on_bad_community
        self.rcvbuf = rcvbuf
        self.counters: Counter[str] = Counter()
        self.bound: tuple[str, int] | None = None
        self._engine: snmp_engine.SnmpEngine | None = None
        self._transport: _Transport | _Transport6 | None = None
        self._receiver: ntfrcv.NotificationReceiver | None = None
        self._current: tuple[str, int, str] | None = None
        self._last_error_log = float("-inf")

    async def start(self) -> None:
        """Build the engine and bind the socket; OSError if the address cannot be bound."""
        engine = await asyncio.to_thread(snmp_engine.SnmpEngine)
        try:
            for index, community in enumerate(sorted(self.communities)):
                snmp_config.add_v1_system(engine, f"trap-community-{index}", community.decode("utf-8"))
            local_users: set[str] = set()
            for user in self.users:
                keys = {"authProtocol": AUTH_PROTOCOLS[user.auth_protocol], "authKey": user.auth_key,
                            "privProtocol": PRIV_PROTOCOLS[user.priv_protocol], "privKey": user.priv_key}
                # Traps are sent under the sender's engine id; informs under ours (after discovery).
                snmp_config.add_v3_user(engine, user.user, securityEngineId=rfc1902.OctetString(user.engine_octets),
                                        **keys)
                if user.user not in local_users:  # the first entry of a name answers its informs
                    local_users.add(user.user)
                    snmp_config.add_v3_user(engine, user.user, **keys)
            transport: _Transport | _Transport6 = _Transport6() if ":" in self.host else _Transport()
            transport.receiver = self
            transport.open_server_mode((self.host, self.port))
            snmp_config.add_transport(engine, (udp6.DOMAIN_NAME if ":" in self.host else udp.DOMAIN_NAME)
                                      + (1,), transport)
            self._receiver = ntfrcv.NotificationReceiver(engine, self._notification)
            lport = transport._lport
            assert lport is not None
            await lport  # the socket is bound (or the bind failed) once this is done
        except PySnmpError as exc:
            engine.close_dispatcher()
            raise OSError(f"cannot start the SNMP trap receiver on {self.host}:{self.port}: {exc}") from exc
        except OSError:
            engine.close_dispatcher()
            raise
        self._engine = engine
        self._transport = transport
        assert transport.transport is not None
        self.bound = transport.transport.get_extra_info("sockname")[:2]
        sock = transport.transport.get_extra_info("socket")
        if self.rcvbuf and sock is not None:
            try:  # the kernel caps it at net.core.rmem_max; a burst of traps then waits in the buffer
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            except OSError as exc:
                log.info("SNMP trap receiver %s:%s: cannot set SO_RCVBUF: %s", self.host, self.port, exc)

    def close(self) -> None:
        """Close the socket and the engine."""
        engine, self._engine = self._engine, None
        if engine is not None:
            if self._receiver is not None:
                self._receiver.close(engine)
            engine.close_dispatcher()

    def _datagram(self, transport: _Transport | _Transport6, data: bytes, address: Any) -> None:
        self.counters["datagrams"] += 1
        host, port = str(address[0]), int(address[1])
        try:
            self._dispatch(transport, data, address, host, port)
        except Exception:  # the barrier around one datagram: a sender's bytes never stop the receiver
            self.counters["errors"] += 1
            now = time.monotonic()
            if now - self._last_error_log >= _ERROR_LOG_EVERY_S:
                self._last_error_log = now
                log.warning("SNMP trap receiver %s:%s: a datagram from %s failed (%d so far); dropped",
                            self.host, self.port, host, self.counters["errors"], exc_info=True)
        finally:
            self._current = None

    def _dispatch(self, transport: _Transport | _Transport6, data: bytes, address: Any, host: str, port: int) -> None:
        try:
            version = int(snmp_api.decodeMessageVersion(data))
        except (ProtocolError, PyAsn1Error, ValueError, TypeError):
            self.counters["malformed"] += 1
            return
        if version in (snmp_api.SNMP_VERSION_1, snmp_api.SNMP_VERSION_2C):
            module = snmp_api.PROTOCOL_MODULES[version]
            try:
                message, _rest = ber_decoder.decode(data, asn1Spec=module.Message())
                community = bytes(module.apiMessage.get_community(message))
            except (PyAsn1Error, ProtocolError, ValueError, TypeError):
                self.counters["malformed"] += 1
                return
            if community not in self.communities:
                self.counters["bad_community"] += 1
                if self.on_bad_community is not None:
                    self.on_bad_community(host, port)
                return
            label = "1" if version == snmp_api.SNMP_VERSION_1 else "2c"
        elif version == 3:
            label = "3"
        else:
            self.counters["malformed"] += 1
            return
        before = self.counters["notifications"]
        self._current = (host, port, label)
        transport._callback_function(transport, address, data)  # the engine, synchronously
        if self.counters["notifications"] == before:
            self.counters["v3_unprocessed" if label == "3" else "unprocessed"] += 1

    def _notification(self, engine: Any, state: Any, context_engine_id: Any, context_name: Any,
                      varbinds: Sequence[tuple[Any, Any]], cb_ctx: Any) -> None:
        current = self._current
        if current is None:  # not from _datagram (cannot happen with our transport)
            return
        host, port, version = current
        self.counters["notifications"] += 1
        try:
            note = decode_notification(host, port, version, varbinds)
        except (PyAsn1Error, ValueError, TypeError):
            self.counters["undecodable"] += 1
            return
        self.on_notification(note)
