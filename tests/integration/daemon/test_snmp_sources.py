"""SNMP traps/informs (Debian's snmptrap and snmpinform) and polling (Debian's snmpd) as daemon sources.

Every notification sent is counted against an event produced or a drop the receiver counted; the
events go through the SNMP detectors. Garbage datagrams never stop the receiver.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.snmpd import Snmpd, silent_udp_port_fixture, snmpd_v3_fixture  # noqa: F401

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.daemon.snmp_poll import SnmpPollSource, snmp_poll_sources
from watchstander.agent.daemon.snmp_traps import SnmpTrapSource, snmp_trap_sources
from watchstander.agent.daemon.sources import Sink
from watchstander.agent.detection.detectors.ifanomaly import IfAnomalyConfig, IfAnomalyDetector
from watchstander.agent.detection.detectors.linkflap import LinkFlapConfig, LinkFlapDetector
from watchstander.agent.detection.detectors.reboot import RebootConfig, RebootDetector
from watchstander.agent.detection.detectors.snmp_auth import SnmpAuthConfig, SnmpAuthDetector
from watchstander.agent.errors import ConfigError
from watchstander.agent.models import Finding
from watchstander.agent.store.schema import open_store
from watchstander.connectors.events import Event
from watchstander.connectors.snmp_traps import TrapUser

pytestmark = pytest.mark.integration

SNMPTRAP = "/usr/bin/snmptrap"
SNMPINFORM = "/usr/bin/snmpinform"
COMMUNITY = "trap-community-for-tests"
ENGINE_ID = "0x80001f8880aabbccdd0102"
USER = TrapUser("trapper", "SHA-256", "trap-auth-key-1", "AES-128", "trap-priv-key-1", ENGINE_ID)
LINK_DOWN, LINK_UP, COLD_START, WARM_START, AUTH_FAILURE = (f"1.3.6.1.6.3.1.1.5.{n}" for n in (3, 4, 1, 2, 5))
IF_INDEX, IF_DESCR = "1.3.6.1.2.1.2.2.1.1", "1.3.6.1.2.1.2.2.1.2"


def _need_net_snmp_tools() -> None:
    for tool in (SNMPTRAP, SNMPINFORM):
        if shutil.which(tool) is None:
            pytest.skip(f"needs Debian's {tool} (apt-get install snmp)")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNMP", "MIB"))}
    persist = tmp_path / "net-snmp"
    persist.mkdir(exist_ok=True)
    return env | {"MIBS": "", "SNMP_PERSISTENT_DIR": str(persist), "SNMPCONFPATH": str(persist),
                  "HOME": str(tmp_path)}


async def _run(argv: list[str], env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}: {err.decode(errors='replace')}"


def v2c(kind: str, port: int, community: str, trap_oid: str, *varbinds: str) -> list[str]:
    tool = SNMPINFORM if kind == "inform" else SNMPTRAP
    extra = ["-t", "2", "-r", "0"] if kind == "inform" else []
    return [tool, "-v2c", "-c", community, *extra, f"udp:127.0.0.1:{port}", "4200", trap_oid, *varbinds]


def v3(kind: str, port: int, trap_oid: str, *, auth_key: str = USER.auth_key, engine_id: str = ENGINE_ID) -> list[str]:
    creds = ["-u", USER.user, "-l", "authPriv", "-a", "SHA-256", "-A", auth_key, "-x", "AES", "-X", USER.priv_key]
    if kind == "inform":  # the receiver is authoritative: snmpinform discovers its engine id
        return [SNMPINFORM, "-v3", *creds, "-t", "2", "-r", "0", f"udp:127.0.0.1:{port}", "", trap_oid]
    return [SNMPTRAP, "-v3", "-e", engine_id, *creds, f"udp:127.0.0.1:{port}", "", trap_oid]


def link(kind: str, port: int, oid: str, index: int) -> list[str]:
    return v2c(kind, port, COMMUNITY, oid, f"{IF_INDEX}.{index}", "i", str(index), f"{IF_DESCR}.{index}", "s",
               f"gi0/{index}")


def test_traps_and_informs_v2c_and_v3_every_one_accounted_for(tmp_path: Path, clock: Any) -> None:
    """snmptrap/snmpinform v2c and v3 authPriv: each becomes an event, or a drop the receiver counted."""
    _need_net_snmp_tools()
    env = _env(tmp_path)
    events: list[Event] = []
    findings: list[Finding] = []
    detectors = [SnmpAuthDetector(SnmpAuthConfig(failures=3), findings.append),
                 LinkFlapDetector(LinkFlapConfig(transitions=6), findings.append),
                 RebootDetector(RebootConfig(), findings.append)]

    def feed(batch: Iterable[Event]) -> None:
        for ev in batch:
            events.append(ev)
            for det in detectors:
                det.feed(ev)

    async def scenario() -> SnmpTrapSource:
        source = SnmpTrapSource("127.0.0.1:0", clock, communities=[COMMUNITY], users=[USER],
                                devices_by_address={"127.0.0.1": "lab-switch"})
        await source.start(Sink(asyncio.get_running_loop(), feed))
        assert source.bound is not None
        port = source.bound[1]
        try:
            for i in range(6):  # three flaps of gi0/2
                await _run(link("trap", port, LINK_DOWN if i % 2 == 0 else LINK_UP, 2), env)
            await _run(link("inform", port, LINK_DOWN, 5), env)  # acknowledged, or snmpinform fails
            for _ in range(3):
                await _run(v2c("trap", port, "guessed-community", COLD_START), env)
            await _run(v3("trap", port, COLD_START), env)
            await _run(v3("inform", port, AUTH_FAILURE), env)
            await _run(v3("trap", port, WARM_START, auth_key="not-the-right-key"), env)  # dropped by USM
            await asyncio.sleep(0.1)
        finally:
            await source.stop()
        return source

    source = asyncio.run(scenario())
    c = source.counters
    traps = [ev.attrs["snmp_trap"] for ev in events if ev.attrs]
    assert traps.count("linkDown") == 4 and traps.count("linkUp") == 3
    assert traps.count("badCommunity") == 3 and traps.count("coldStart") == 1
    assert traps.count("authenticationFailure") == 1 and "warmStart" not in traps
    # 13 notifications sent (11 traps, 2 informs): 8 events from notifications, 3 bad communities,
    # 1 dropped by USM; the v3 inform's engine-id discovery probe is the one extra datagram.
    assert c["notifications"] == 9 and c["bad_community"] == 3 and c["events"] == 12 == len(events)
    assert c["datagrams"] == 14 and c["v3_unprocessed"] == 2 and c["malformed"] == 0 and c["errors"] == 0
    assert c["datagrams"] == c["notifications"] + c["bad_community"] + c["v3_unprocessed"] + c["unprocessed"]
    by_oid = {ev.attrs["trap_oid"]: ev for ev in events if ev.attrs and "trap_oid" in ev.attrs}
    down = next(ev for ev in events if ev.attrs and ev.attrs.get("if_index") == 5)
    assert down.attrs == {"snmp_trap": "linkDown", "trap_oid": LINK_DOWN, "agent": "127.0.0.1", "version": "2c",
                          "device": "lab-switch", "sys_uptime": 4200, "if_index": 5, "if_descr": "gi0/5"}
    assert by_oid[COLD_START].attrs is not None and by_oid[COLD_START].attrs["version"] == "3"
    assert {f.detector for f in findings} == {"snmp_auth", "linkflap", "reboot"}
    flap = next(f for f in findings if f.detector == "linkflap")
    assert flap.entities == {"device": "lab-switch", "interface": "gi0/2", "if_index": "2"}
    guess = next(f for f in findings if f.detector == "snmp_auth")
    assert guess.entities["attacker"] == "127.0.0.1"


class _LoopThread:
    """An event loop in a thread of its own, for feeding a receiver from hypothesis examples."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(name="receiver")
def receiver_fixture(clock: Any) -> Iterator[tuple[SnmpTrapSource, _LoopThread, list[Event]]]:
    """A trap source on 127.0.0.1:0 running on a loop in another thread."""
    events: list[Event] = []
    runner = _LoopThread()
    source = SnmpTrapSource("127.0.0.1:0", clock, communities=[COMMUNITY], users=[USER])

    async def start() -> None:
        await source.start(Sink(asyncio.get_running_loop(), events.extend))

    try:
        runner.run(start())
        yield source, runner, events
    finally:
        async def stop() -> None:
            await source.stop()
        runner.run(stop())
        runner.close()


def _ber_len(n: int) -> bytes:
    return bytes([n]) if n < 128 else b"\x82" + n.to_bytes(2, "big")


def _snmp_like(version: int, community: bytes, rest: bytes) -> bytes:
    body = b"\x02\x01" + bytes([version]) + b"\x04" + _ber_len(len(community)) + community + rest
    return b"\x30" + _ber_len(len(body)) + body


garbage = st.one_of(
    st.binary(min_size=0, max_size=512),
    st.builds(_snmp_like, st.sampled_from([0, 1, 3, 7]), st.sampled_from([COMMUNITY.encode(), b"public", b""]),
              st.binary(max_size=256)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(datagram=garbage)
def test_garbage_datagrams_are_counted_and_never_stop_the_receiver(
        receiver: tuple[SnmpTrapSource, _LoopThread, list[Event]], datagram: bytes) -> None:
    """Random bytes and broken SNMP: every datagram is counted in exactly one bucket, none crashes the receiver."""
    source, _runner, _events = receiver
    assert source.bound is not None
    c = source.counters
    before = c["datagrams"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(datagram, source.bound)
    buckets = ("notifications", "bad_community", "v3_unprocessed", "unprocessed", "malformed", "errors")
    deadline = time.monotonic() + 5
    while sum(c[b] for b in buckets) == before and time.monotonic() < deadline:
        time.sleep(0.001)
    assert c["datagrams"] == before + 1 == sum(c[b] for b in buckets)


def test_a_real_trap_still_decodes_after_garbage(tmp_path: Path,
                                                 receiver: tuple[SnmpTrapSource, _LoopThread, list[Event]]) -> None:
    """Garbage first, then snmptrap: the receiver still decodes it."""
    _need_net_snmp_tools()
    source, runner, events = receiver
    assert source.bound is not None
    rng = random.Random(9)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for batch in range(15):  # paced: this is about the receiver, not the kernel's buffer
            for _ in range(20):
                sock.sendto(rng.randbytes(rng.randrange(0, 300)), source.bound)
            deadline = time.monotonic() + 5
            while source.counters["datagrams"] < 20 * (batch + 1) and time.monotonic() < deadline:
                time.sleep(0.001)
    runner.run(_run(v2c("trap", source.bound[1], COMMUNITY, WARM_START), _env(tmp_path)))
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [ev.attrs["snmp_trap"] for ev in events if ev.attrs] == ["warmStart"]
    assert source.counters["datagrams"] == 301


def _write_secret(path: Path, text: str) -> Path:
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _app(tmp_path: Path, clock: Any, sources: dict[str, Any], devices: list[dict[str, Any]]) -> App:
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700, exist_ok=True)
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"},
                           "runner": {"credentials_dir": str(creds)},
                           "sources": {"syslog_udp": [], **sources}, "devices": devices})
    return App(cfg, open_store(cfg.store.resolved_url()), clock)


def test_trap_sources_are_built_from_the_config_with_named_credentials(tmp_path: Path, clock: Any) -> None:
    """[sources] snmp_traps plus [sources.snmp] communities and users read from the credentials directory."""
    _need_net_snmp_tools()
    app = _app(tmp_path, clock, {
        "snmp_traps": ["127.0.0.1:0"],
        "snmp": {"trap_communities": [{"name": "lab", "community_credential": "trap-community"}],
                 "trap_users": [{"user": USER.user, "engine_id": ENGINE_ID, "auth_key_credential": "trap-auth",
                                 "priv_key_credential": "trap-priv"}]},
    }, [])
    creds = tmp_path / "credentials"
    _write_secret(creds / "trap-community", COMMUNITY)
    _write_secret(creds / "trap-auth", USER.auth_key)
    _write_secret(creds / "trap-priv", USER.priv_key)
    (source,) = snmp_trap_sources(app)
    assert isinstance(source, SnmpTrapSource)
    events: list[Event] = []

    async def scenario() -> None:
        await source.start(Sink(asyncio.get_running_loop(), events.extend))
        try:
            assert source.bound is not None
            await _run(v2c("trap", source.bound[1], COMMUNITY, COLD_START), _env(tmp_path))
            await _run(v3("trap", source.bound[1], WARM_START), _env(tmp_path))
            await asyncio.sleep(0.05)
        finally:
            await source.stop()

    asyncio.run(scenario())
    assert [ev.attrs["snmp_trap"] for ev in events if ev.attrs] == ["coldStart", "warmStart"]
    app.store.close()


def test_one_v3_user_block_serves_several_senders_by_their_engine_ids(tmp_path: Path, clock: Any) -> None:
    """engine_ids: many devices configured with the same USM user and keys; an unlisted engine id is refused."""
    _need_net_snmp_tools()
    other = "0x80001f8880aabbccdd0203"
    app = _app(tmp_path, clock, {
        "snmp_traps": ["127.0.0.1:0"],
        "snmp": {"trap_users": [{"user": USER.user, "engine_ids": [ENGINE_ID, other],
                                 "auth_key_credential": "trap-auth", "priv_key_credential": "trap-priv"}]},
    }, [])
    creds = tmp_path / "credentials"
    _write_secret(creds / "trap-auth", USER.auth_key)
    _write_secret(creds / "trap-priv", USER.priv_key)
    (source,) = snmp_trap_sources(app)
    assert isinstance(source, SnmpTrapSource)
    events: list[Event] = []

    async def scenario() -> None:
        await source.start(Sink(asyncio.get_running_loop(), events.extend))
        try:
            assert source.bound is not None
            await _run(v3("trap", source.bound[1], COLD_START), _env(tmp_path))
            await _run(v3("trap", source.bound[1], WARM_START, engine_id=other), _env(tmp_path))
            await _run(v3("trap", source.bound[1], LINK_DOWN, engine_id="0x80001f8880aabbccdd0999"), _env(tmp_path))
            await asyncio.sleep(0.05)
        finally:
            await source.stop()

    asyncio.run(scenario())
    assert [ev.attrs["snmp_trap"] for ev in events if ev.attrs] == ["coldStart", "warmStart"]
    app.store.close()


@pytest.mark.parametrize("user", [
    {"user": "t"},                                                          # neither
    {"user": "t", "engine_id": "0x8000000001", "engine_ids": ["0x8000000002"]},  # both
    {"user": "t", "engine_ids": ["0x8000000001", "0X8000000001"]},          # twice
    {"user": "t", "engine_ids": ["nothex"]},
])
def test_a_trap_user_names_its_senders_once(user: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        validate_config({"sources": {"snmp": {"trap_users": [{**user, "auth_key_credential": "a",
                                                               "priv_key_credential": "p"}]}}})


def _snmp_device(name: str, port: int, agent: Snmpd | None = None) -> dict[str, Any]:
    return {"name": name, "address": "127.0.0.1", "roles": ["switch"],
            "snmp": {"user": "watchstander", "port": port, "auth_key_credential": f"{name}-auth",
                     "priv_key_credential": f"{name}-priv", "retries": 0}}


def test_polling_reads_uptime_and_counters_and_survives_a_silent_device(
        tmp_path: Path, clock: Any, snmpd_v3: Snmpd, silent_udp_port: int) -> None:
    """Every poll: system and interface events from snmpd; a silent device is counted and skipped."""
    assert snmpd_v3.port is not None
    app = _app(tmp_path, clock, {"snmp": {"poll_s": 2, "poll_timeout_s": 2}},
               [_snmp_device("lab-switch", snmpd_v3.port), _snmp_device("dead-switch", silent_udp_port)])
    for name in ("lab-switch", "dead-switch"):
        _write_secret(tmp_path / "credentials" / f"{name}-auth", snmpd_v3.user.auth_key)
        _write_secret(tmp_path / "credentials" / f"{name}-priv", snmpd_v3.user.priv_key)
    (source,) = snmp_poll_sources(app)
    assert isinstance(source, SnmpPollSource) and source.devices == ["lab-switch", "dead-switch"]
    fed: list[Event] = []
    findings: list[Finding] = []
    reboot = RebootDetector(RebootConfig(), findings.append)
    anomaly = IfAnomalyDetector(IfAnomalyConfig(), findings.append)

    async def scenario() -> tuple[list[Event], list[Event]]:
        source._sink = Sink(asyncio.get_running_loop(), fed.extend)
        try:
            first = await source.poll_once()
            await asyncio.sleep(0.3)
            started = time.monotonic()
            second = await source.poll_once()
            assert time.monotonic() - started < 3.5  # the silent device costs its timeout, once, in parallel
        finally:
            await source.stop()
        return first, second

    first, second = asyncio.run(scenario())
    assert fed == first + second
    (system,) = [ev for ev in first if ev.attrs and ev.attrs["snmp_poll"] == "system"]
    assert system.attrs is not None and system.host == "lab-switch" and system.attrs["sys_uptime"] > 0
    interfaces = [ev.attrs for ev in first if ev.attrs and ev.attrs["snmp_poll"] == "interface"]
    lo = next(a for a in interfaces if a.get("if_descr") == "lo")
    assert {"in_octets", "out_octets", "in_errors", "out_errors", "high_speed_mbps"} <= lo.keys()
    assert all(ev.host == "lab-switch" for ev in first + second)
    c = source.counters
    assert c["polls"] == 2 and c["device_polls"] == 4 and c["answers"] == 2 and c["no_answer"] == 2
    assert c["events"] == len(fed)
    for ev in fed:
        reboot.feed(ev)
        anomaly.feed(ev)
    assert findings == []
    app.store.close()


def test_a_restarted_agent_is_a_reboot_finding(tmp_path: Path, clock: Any, snmpd_v3: Snmpd) -> None:
    """snmpd stopped and started again on its port: sysUpTime goes backwards between two polls."""
    assert snmpd_v3.port is not None
    app = _app(tmp_path, clock, {"snmp": {"poll_s": 1.5, "poll_timeout_s": 1.5}},
               [_snmp_device("lab-switch", snmpd_v3.port)])
    _write_secret(tmp_path / "credentials" / "lab-switch-auth", snmpd_v3.user.auth_key)
    _write_secret(tmp_path / "credentials" / "lab-switch-priv", snmpd_v3.user.priv_key)
    (source,) = snmp_poll_sources(app)
    assert isinstance(source, SnmpPollSource)
    findings: list[Finding] = []
    reboot = RebootDetector(RebootConfig(), findings.append)

    async def scenario() -> None:
        feed = lambda evs: [reboot.feed(ev) for ev in evs]
        await source.start(Sink(asyncio.get_running_loop(), feed))  # the loop's first poll: a baseline
        try:
            while source.counters["answers"] < 1:
                await asyncio.sleep(0.05)
        finally:
            await source.stop()
        # The kept engine waits out its timeout after the restart: make the uptime before clearly longer.
        await asyncio.sleep(2.5)
        await source.poll_once()
        await asyncio.to_thread(snmpd_v3.stop)
        await asyncio.to_thread(snmpd_v3.start)
        try:
            await source.poll_once()  # the kept engine gets no answer; a fresh one does
        finally:
            await source.stop()
        assert source.counters["answers"] == 3 and source.counters["no_answer"] == 0

    asyncio.run(asyncio.wait_for(scenario(), 30))
    (f,) = findings
    assert f.detector == "reboot" and f.entities == {"device": "lab-switch"}
    assert f.attributes["signals"] == ["sysUpTime decreased"]
    app.store.close()


def test_polling_an_unknown_device_is_a_config_error(tmp_path: Path, clock: Any) -> None:
    """poll_devices naming a device without [devices.snmp] stops start-up with the key named."""
    app = _app(tmp_path, clock, {"snmp": {"poll_s": 30, "poll_devices": ["nope"]}}, [])
    with pytest.raises(ConfigError, match="poll_devices"):
        snmp_poll_sources(app)
    app.store.close()


def test_a_trap_port_in_use_is_an_oserror(clock: Any) -> None:
    """Start-up fails with OSError (the daemon's contract for sources) and leaves nothing open."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        source = SnmpTrapSource(f"127.0.0.1:{port}", clock, communities=[COMMUNITY], users=[])

        async def scenario() -> None:
            with pytest.raises(OSError):
                await source.start(Sink(asyncio.get_running_loop(), lambda evs: None))
            await source.stop()

        asyncio.run(scenario())
