"""The SNMP connector against Debian's real snmpd: GET, SET, a switch port shut for real, and failures."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest
from support.snmpd import (  # noqa: F401  (fixtures)
    IF_ADMIN_STATUS,
    IF_DESCR,
    SYS_CONTACT,
    SYS_DESCR,
    SYS_LOCATION,
    SYS_UPTIME,
    Snmpd,
    SnmpSwitch,
    silent_udp_port_fixture,
    snmp_switch_fixture,
    snmpd_skip_reason,
    snmpd_v3_fixture,
)

from watchstander.connectors.errors import (
    AuthenticationFailed,
    DeviceError,
    DeviceRefused,
    DeviceTimeout,
    DeviceUnreachable,
)
from watchstander.connectors.snmp import (
    SnmpTarget,
    SnmpV3Credentials,
    SnmpVarBind,
    snmp_get,
    snmp_set,
)

T = TypeVar("T")
AUTH = "auth-secret-1234"
PRIV = "priv-secret-5678"


def run(awaitable: Awaitable[T]) -> T:
    """Each call on a fresh event loop, as the runner may do."""

    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def fails(awaitable: Awaitable[object], kind: type[DeviceError], device: str) -> DeviceError:
    """Run and expect `kind` naming `device`; return the error for further checks."""
    with pytest.raises(kind) as info:
        run(awaitable)
    assert info.value.device == device
    assert str(info.value).startswith(f"{device}: ")
    return info.value


# --- pure: no agent needed ---------------------------------------------------------------------


def test_repr_and_str_never_show_keys() -> None:
    creds = SnmpV3Credentials("ops", "SHA-512", AUTH, "AES-256", PRIV)
    v3 = SnmpTarget("core-sw", "192.0.2.7", v3=creds)
    v2c = SnmpTarget("old-sw", "192.0.2.8", community="community-secret-42")
    for text in (repr(creds), str(creds), repr(v3), str(v3), repr(v2c), str(v2c)):
        assert AUTH not in text and PRIV not in text and "community-secret-42" not in text
    assert "ops" in repr(creds) and "SHA-512" in repr(creds) and "core-sw" in repr(v3)


def test_target_takes_exactly_one_of_v3_and_community() -> None:
    creds = SnmpV3Credentials("ops", "SHA-256", AUTH, "AES-128", PRIV)
    with pytest.raises(ValueError, match="exactly one"):
        SnmpTarget("sw", "192.0.2.7")
    with pytest.raises(ValueError, match="exactly one"):
        SnmpTarget("sw", "192.0.2.7", v3=creds, community="public-ish")
    with pytest.raises(ValueError, match="at least 8"):
        SnmpV3Credentials("ops", "SHA-256", "short", "AES-128", PRIV)
    with pytest.raises(ValueError, match="unsupported auth"):
        SnmpV3Credentials("ops", "MD5", AUTH, "AES-128", PRIV)  # type: ignore[arg-type]


def test_bad_arguments_are_refused_before_any_traffic() -> None:
    target = SnmpTarget("sw", "192.0.2.7", v3=SnmpV3Credentials("ops", "SHA-256", AUTH, "AES-128", PRIV))
    with pytest.raises(ValueError, match="numeric OID"):
        run(snmp_get(target, ["sysDescr.0"], timeout_s=1))
    with pytest.raises(ValueError, match="at least one"):
        run(snmp_get(target, [], timeout_s=1))
    with pytest.raises(TypeError, match="integer"):
        run(snmp_set(target, SYS_CONTACT, "integer", "1", timeout_s=1))


# --- against snmpd on 127.0.0.1 ------------------------------------------------------------------

needs_snmpd = pytest.mark.skipif(snmpd_skip_reason() is not None, reason=snmpd_skip_reason() or "")


@pytest.mark.integration
@needs_snmpd
def test_get_reads_sysdescr_and_uptime(snmpd_v3: Snmpd) -> None:
    answer = run(snmp_get(snmpd_v3.target("lab-agent"), [SYS_DESCR, SYS_UPTIME], timeout_s=5))
    assert answer[0] == SnmpVarBind(SYS_DESCR, "OctetString", "Watchstander test agent (net-snmp)")
    assert answer[1].oid == SYS_UPTIME and answer[1].type == "TimeTicks"
    assert isinstance(answer[1].value, int) and answer[1].value >= 0


@pytest.mark.integration
@needs_snmpd
def test_sha512_aes256_user_reads_too(snmpd_v3: Snmpd) -> None:
    target = snmpd_v3.target("lab-agent", user=snmpd_v3.users[1])
    assert target.v3 is not None and target.v3.auth_protocol == "SHA-512" and target.v3.priv_protocol == "AES-256"
    [descr] = run(snmp_get(target, [SYS_DESCR], timeout_s=5))
    assert descr.value == "Watchstander test agent (net-snmp)"


@pytest.mark.integration
@needs_snmpd
def test_set_then_get_back_the_writable_object(snmpd_v3: Snmpd) -> None:
    target = snmpd_v3.target("lab-agent")
    echoed = run(snmp_set(target, SYS_LOCATION, "octet-string", "rack 7, row B", timeout_s=5))
    assert echoed == SnmpVarBind(SYS_LOCATION, "OctetString", "rack 7, row B")
    assert run(snmp_get(target, [SYS_LOCATION], timeout_s=5)) == [echoed]
    assert snmpd_v3.cli_get(SYS_LOCATION).strip('"') == "rack 7, row B"  # net-snmp's own client agrees
    run(snmp_set(target, SYS_CONTACT, "octet-string", "Zürich NOC", timeout_s=5))
    assert run(snmp_get(target, [SYS_CONTACT], timeout_s=5))[0].value == "Zürich NOC"


@pytest.mark.integration
@needs_snmpd
def test_calls_from_many_loops_and_at_once(snmpd_v3: Snmpd) -> None:
    target = snmpd_v3.target("lab-agent")
    for _ in range(2):
        assert run(snmp_get(target, [SYS_DESCR], timeout_s=5))[0].type == "OctetString"

    async def many() -> list[list[SnmpVarBind]]:
        return await asyncio.gather(*(snmp_get(target, [SYS_UPTIME], timeout_s=5) for _ in range(4)))

    assert all(answer[0].type == "TimeTicks" for answer in run(many()))


@pytest.mark.integration
@needs_snmpd
def test_wrong_auth_key_is_authentication_failed(snmpd_v3: Snmpd) -> None:
    target = snmpd_v3.target("lab-agent")
    assert target.v3 is not None
    bad = replace(target, v3=replace(target.v3, auth_key="not-the-auth-key"))
    error = fails(snmp_get(bad, [SYS_DESCR], timeout_s=5), AuthenticationFailed, "lab-agent")
    assert "wrong digest" in str(error) and "not-the-auth-key" not in str(error)


@pytest.mark.integration
@needs_snmpd
def test_wrong_priv_key_is_authentication_failed(snmpd_v3: Snmpd) -> None:
    # The agent drops what it cannot decrypt without a word; the authNoPriv probe tells why.
    target = snmpd_v3.target("lab-agent")
    assert target.v3 is not None
    bad = replace(target, v3=replace(target.v3, priv_key="not-the-priv-key"))
    started = time.monotonic()
    error = fails(snmp_get(bad, [SYS_DESCR], timeout_s=2), AuthenticationFailed, "lab-agent")
    assert time.monotonic() - started < 3
    assert "privacy key" in str(error) and "not-the-priv-key" not in str(error)


@pytest.mark.integration
@needs_snmpd
def test_wrong_priv_protocol_is_authentication_failed(snmpd_v3: Snmpd) -> None:
    target = snmpd_v3.target("lab-agent")
    assert target.v3 is not None
    bad = replace(target, v3=replace(target.v3, priv_protocol="AES-256"))
    fails(snmp_get(bad, [SYS_DESCR], timeout_s=2), AuthenticationFailed, "lab-agent")


@pytest.mark.integration
@needs_snmpd
def test_unknown_user_is_authentication_failed(snmpd_v3: Snmpd) -> None:
    target = snmpd_v3.target("lab-agent")
    assert target.v3 is not None
    bad = replace(target, v3=replace(target.v3, user="intruder"))
    error = fails(snmp_get(bad, [SYS_DESCR], timeout_s=5), AuthenticationFailed, "lab-agent")
    assert "unknown user" in str(error) and "intruder" in str(error)


@pytest.mark.integration
def test_silence_is_device_timeout_within_the_budget(silent_udp_port: int) -> None:
    target = SnmpTarget("mute-switch", "127.0.0.1", silent_udp_port,
                        v3=SnmpV3Credentials("ops", "SHA-256", AUTH, "AES-128", PRIV))
    started = time.monotonic()
    error = fails(snmp_get(target, [SYS_DESCR], timeout_s=1), DeviceTimeout, "mute-switch")
    assert time.monotonic() - started < 1.6
    assert f"127.0.0.1:{silent_udp_port}" in str(error)
    v2c = SnmpTarget("mute-switch", "127.0.0.1", silent_udp_port, community="c0mmunity-secret", retries=2)
    fails(snmp_set(v2c, SYS_LOCATION, "octet-string", "x", timeout_s=0.6), DeviceTimeout, "mute-switch")


@pytest.mark.integration
@needs_snmpd
def test_no_such_object_names_the_oid(snmpd_v3: Snmpd) -> None:
    target = snmpd_v3.target("lab-agent")
    missing = "1.3.6.1.2.1.1.99.0"
    error = fails(snmp_get(target, [SYS_DESCR, missing], timeout_s=5), DeviceRefused, "lab-agent")
    assert f"no such object {missing}" in str(error)
    error = fails(snmp_get(target, [f"{IF_DESCR}.999999"], timeout_s=5), DeviceRefused, "lab-agent")
    assert f"no such object {IF_DESCR}.999999" in str(error)


@pytest.mark.integration
@needs_snmpd
def test_set_of_a_read_only_object_is_refused(snmpd_v3: Snmpd) -> None:
    error = fails(snmp_set(snmpd_v3.target("lab-agent"), SYS_UPTIME, "integer", 5, timeout_s=5),
                  DeviceRefused, "lab-agent")
    assert "notWritable" in str(error) and SYS_UPTIME in str(error)


@pytest.mark.integration
@needs_snmpd
def test_set_of_the_wrong_type_is_refused(snmpd_v3: Snmpd) -> None:
    error = fails(snmp_set(snmpd_v3.target("lab-agent"), SYS_LOCATION, "integer", 5, timeout_s=5),
                  DeviceRefused, "lab-agent")
    assert "wrongType" in str(error)


@pytest.mark.integration
@needs_snmpd
def test_v2c_community_when_the_agent_has_one(tmp_path: Path) -> None:
    agent = Snmpd(tmp_path / "v2c", extra_config="rocommunity c0mmunity-ro 127.0.0.1\n").start()
    try:
        target = SnmpTarget("old-switch", "127.0.0.1", agent.port or 0, community="c0mmunity-ro", retries=0)
        assert run(snmp_get(target, [SYS_DESCR], timeout_s=5))[0].type == "OctetString"
        error = fails(snmp_set(target, SYS_LOCATION, "octet-string", "x", timeout_s=2), DeviceRefused, "old-switch")
        assert "noAccess" in str(error)  # a read-only community
        assert "c0mmunity-ro" not in str(error)
        wrong = replace(target, community="guessed-wrong")
        fails(snmp_get(wrong, [SYS_DESCR], timeout_s=0.5), DeviceTimeout, "old-switch")
    finally:
        agent.stop()


@pytest.mark.integration
@needs_snmpd
def test_ipv6_agent(tmp_path: Path) -> None:
    if not socket.has_ipv6 or not Path("/proc/net/if_inet6").exists():
        pytest.skip("no IPv6 on this machine")
    agent = Snmpd(tmp_path / "v6", address="::1").start()
    try:
        target = agent.target("v6-switch")
        assert target.endpoint == f"[::1]:{agent.port}"
        assert run(snmp_get(target, [SYS_DESCR], timeout_s=5))[0].type == "OctetString"
    finally:
        agent.stop()


def test_unresolvable_name_is_device_unreachable() -> None:
    target = SnmpTarget("ghost", "no-such-host.invalid", v3=SnmpV3Credentials("ops", "SHA-256", AUTH, "AES-128", PRIV))
    error = fails(snmp_get(target, [SYS_DESCR], timeout_s=5), DeviceUnreachable, "ghost")
    assert "no-such-host.invalid" in str(error)


# --- the switch: snmpd in a namespace, ports are real links --------------------------------------


@pytest.mark.integration
@pytest.mark.privileged
def test_if_admin_status_really_shuts_and_enables_a_port(snmp_switch: SnmpSwitch) -> None:
    target = snmp_switch.target("access-sw-1")
    index = snmp_switch.if_index
    descr, status = run(snmp_get(target, [f"{IF_DESCR}.{index}", f"{IF_ADMIN_STATUS}.{index}"], timeout_s=5))
    assert descr.value == snmp_switch.port_name and status.value == 1
    assert snmp_switch.admin_up(index)

    down = run(snmp_set(target, f"{IF_ADMIN_STATUS}.{index}", "integer", 2, timeout_s=5))
    assert down == SnmpVarBind(f"{IF_ADMIN_STATUS}.{index}", "Integer", 2)
    assert not snmp_switch.admin_up(index)  # the link itself is down, not just a number in the agent
    assert run(snmp_get(target, [f"{IF_ADMIN_STATUS}.{index}"], timeout_s=5))[0].value == 2
    other = [i for i in snmp_switch.ports.values() if i != index]
    assert all(snmp_switch.admin_up(i) for i in other)

    run(snmp_set(target, f"{IF_ADMIN_STATUS}.{index}", "integer", 1, timeout_s=5))
    assert snmp_switch.admin_up(index)
    assert run(snmp_get(target, [f"{IF_ADMIN_STATUS}.{index}"], timeout_s=5))[0].value == 1
