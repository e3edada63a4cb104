"""SSH collection against the IOS emulator and Debian's sshd in a namespace: snapshots, drift, ARP, failures."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from support.collect_sudo import collection_sudo_rule
from support.firewall import ATTACKER_ADDRESS, firewall_skip_reason, start_linux_firewall
from support.ios_emulator import IosEmulator
from support.runkit import RunKit, ssh_device_toml
from support.sshkeys import SshTestKeys, generate_keypair, known_hosts_line, write_known_hosts

from watchstander.agent.cli import collect as collect_cli
from watchstander.agent.cli.context import Context
from watchstander.agent.cli.main import common_parent
from watchstander.agent.config.detectors import ArpSpoofConfig
from watchstander.agent.daemon.sources import Sink
from watchstander.agent.daemon.ssh_collect import SshCollector, ssh_collect_sources
from watchstander.agent.detection.detectors.arpspoof import ArpSpoofDetector
from watchstander.agent.detection.detectors.drift import ConfigDriftDetector, DriftConfig
from watchstander.agent.errors import ConfigError
from watchstander.agent.models import Finding
from watchstander.agent.store.snapshots import SnapshotStore
from watchstander.connectors.events import ARP, LOG, Event

pytestmark = pytest.mark.integration
T = TypeVar("T")


@pytest.fixture
def router(ios_emulator: Callable[..., IosEmulator]) -> Callable[..., IosEmulator]:
    """Factory: a started IOS emulator trusting ssh_keys.client (tests/conftest.py's ios_emulator)."""
    return ios_emulator


@pytest.fixture
def kits() -> Iterator[Callable[..., RunKit]]:
    """Factory: a RunKit (config, store, App) closed after the test."""
    made: list[RunKit] = []

    def make(path: Path, devices_toml: str, extra_toml: str = "[sources.ssh]\nevery_s = 60\n") -> RunKit:
        kit = RunKit(path, devices_toml, extra_toml)
        made.append(kit)
        return kit

    yield make
    for kit in made:
        kit.close()


def router_toml(tmp_path: Path, keys: SshTestKeys, emulator: IosEmulator, name: str,
                known: list[str] | None = None, port: int | None = None) -> str:
    known_hosts = write_known_hosts(tmp_path / f"known_hosts-{name}",
                                    [emulator.known_hosts_line()] if known is None else known)
    return ssh_device_toml(name, "127.0.0.1", port=port or emulator.port, user=emulator.user,
                           key_file=keys.client.private_path, known_hosts=known_hosts, roles=["cisco-router"],
                           platform="cisco-ios")


def the_collector(kit: RunKit) -> SshCollector:
    sources = ssh_collect_sources(kit.app)
    assert len(sources) == 1 and isinstance(sources[0], SshCollector)
    return sources[0]


def run(collector: SshCollector, body: Callable[[SshCollector], Awaitable[T]]) -> T:
    """Run body(collector) on a fresh loop; the collector's connections are closed afterwards."""
    async def main() -> T:
        try:
            return await body(collector)
        finally:
            await collector.stop()

    return asyncio.run(main())


def cli(kit: RunKit, *argv: str) -> int:
    """Run a `watchstander collect ...` command against the kit's config (main.py lists the module)."""
    parser = argparse.ArgumentParser(parents=[common_parent(suppress=False)])
    collect_cli.register(parser.add_subparsers(dest="command", required=True), common_parent())
    args = parser.parse_args(["collect", *argv])
    ctx = Context(config_path=kit.config_path)
    try:
        return int(args.handler(args, ctx))
    finally:
        ctx.close()


def feed(detector: ConfigDriftDetector | ArpSpoofDetector, events: list[Event]) -> None:
    for ev in events:
        if ev.kind in detector.kinds:
            detector.feed(ev)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------ store

def test_an_unchanged_snapshot_is_stored_once_and_the_first_is_the_auto_baseline(tmp_path: Path,
                                                                                  kits: Callable[..., RunKit]) -> None:
    kit = kits(tmp_path, "")
    snaps = SnapshotStore(kit.store, kit.clock, kit.app.audit)
    first = snaps.record("r1", "show running-config", "config", "hostname a\n", auto_baseline=True)
    again = snaps.record("r1", "show running-config", "config", "hostname a\n", auto_baseline=True)
    changed = snaps.record("r1", "show running-config", "config", "hostname b\n", auto_baseline=True)
    back = snaps.record("r1", "show running-config", "config", "hostname a\n", auto_baseline=True)
    assert first.new and not again.new and changed.new and back.new
    assert again.snapshot.id == first.snapshot.id and again.snapshot.last_seen >= first.snapshot.last_seen
    assert [s.text for s in snaps.history("r1", "show running-config")] == ["hostname a\n", "hostname b\n",
                                                                            "hostname a\n"]
    baseline = snaps.baseline("r1", "show running-config")
    assert baseline is not None and baseline.auto and baseline.snapshot.id == first.snapshot.id
    approved = snaps.approve("r1", "show running-config", "uid:0:root", changed.snapshot.id)
    assert approved is not None and not approved.auto and approved.snapshot.text == "hostname b\n"
    assert snaps.approve("r1", "show running-config", "uid:0:root", 999) is None
    audited = [r for r in kit.app.audit.records() if r.action == "collect.baseline"]
    assert [(r.data["auto"], r.actor) for r in audited] == [(True, "watchstander:collector"), (False, "uid:0:root")]
    assert kit.app.audit.verify().ok


def test_collection_is_off_by_default_and_unknown_devices_are_a_config_error(tmp_path: Path,
                                                                            kits: Callable[..., RunKit]) -> None:
    assert ssh_collect_sources(kits(tmp_path / "off", "", "").app) == []
    kit = kits(tmp_path / "bad", "", '[sources.ssh]\nevery_s = 60\ndevices = ["nope"]\n')
    with pytest.raises(ConfigError) as err:
        ssh_collect_sources(kit.app)
    assert err.value.problems == [("sources.ssh.devices", "'nope' is not in the inventory ([[devices]])")]


# ------------------------------------------------------------------------------------------ IOS

def test_ios_router_drift_is_one_finding_until_the_change_is_approved(
        tmp_path: Path, ssh_keys: SshTestKeys, router: Callable[..., IosEmulator],
        kits: Callable[..., RunKit], capsys: pytest.CaptureFixture[str]) -> None:
    emulator = router()
    kit = kits(tmp_path / "agent", router_toml(tmp_path, ssh_keys, emulator, "edge1"))
    collector = the_collector(kit)
    found: list[Finding] = []
    detector = ConfigDriftDetector(DriftConfig(), found.append)

    async def before_the_change(c: SshCollector) -> list[list[Event]]:
        return [await c.collect_once(), await c.collect_once()]

    rounds = run(collector, before_the_change)
    assert rounds == [[], []]  # the first snapshot became the baseline; nothing drifted
    # Both commands answered (configuration and the empty ARP table), each stored once, then unchanged.
    assert collector.counters["commands_refused"] == 0 and collector.counters["arp_entries"] == 0
    assert collector.counters["snapshots_new"] == 2 and collector.counters["snapshots_unchanged"] == 2
    assert collector.counters["devices_collected"] == 2 and collector.counters["device_failures"] == 0
    snaps = SnapshotStore(kit.store, kit.clock)
    latest = snaps.latest("edge1", "show running-config")
    assert latest is not None and "hostname router" in latest.text and "Building configuration" not in latest.text
    assert len(snaps.history("edge1", "show running-config")) == 1

    with emulator.lock:  # someone changes the router behind the agent's back
        emulator.state.acls["MGMT"] = {10: "permit ip host 198.51.100.7 any"}

    async def after_the_change(c: SshCollector) -> list[list[Event]]:
        return [await c.collect_once(), await c.collect_once()]

    rounds = run(the_collector(kit), after_the_change)
    assert [len(r) for r in rounds] == [1, 1]
    ev = rounds[0][0]
    assert ev.kind == LOG and ev.attrs is not None and ev.attrs["device"] == "edge1"
    assert "+ 10 permit ip host 198.51.100.7 any" in ev.attrs["diff"] and ev.attrs["baseline_auto"] is True
    feed(detector, rounds[0] + rounds[1])
    assert len(found) == 1 and found[0].count == 2 and found[0].entities["device"] == "edge1"
    assert "+ip access-list extended MGMT" in found[0].attributes["diff"]

    assert cli(kit, "show", "edge1", "--command", "show running-config") == 0
    shown = capsys.readouterr().out
    assert "DRIFT" in shown and "+ip access-list extended MGMT" in shown and "(auto: the first snapshot)" in shown
    assert cli(kit, "baseline", "edge1") == 0
    assert "baseline is now snapshot" in capsys.readouterr().out
    baseline = snaps.baseline("edge1", "show running-config")
    assert baseline is not None and not baseline.auto and baseline.approved_by.startswith("uid:")
    assert "MGMT" in baseline.snapshot.text

    async def once(c: SshCollector) -> list[Event]:
        return await c.collect_once()

    assert run(the_collector(kit), once) == []  # approved: no drift any more
    assert cli(kit, "list", "--format", "json") == 0
    assert '"state": "ok"' in capsys.readouterr().out


def test_the_source_collects_on_its_schedule_and_stops_cleanly(
        tmp_path: Path, ssh_keys: SshTestKeys, router: Callable[..., IosEmulator],
        kits: Callable[..., RunKit]) -> None:
    emulator = router()
    kit = kits(tmp_path / "agent", router_toml(tmp_path, ssh_keys, emulator, "edge1"),
               "[sources.ssh]\nevery_s = 0.2\ncollect = [\"config\"]\n")
    collector = the_collector(kit)
    assert "every 0.2 s" in collector.describe() and "1 device(s)" in collector.describe()
    fed: list[Event] = []

    async def scheduled(c: SshCollector) -> int:
        await c.start(Sink(asyncio.get_running_loop(), fed.extend))
        for _ in range(200):
            if c.counters["collections"]:
                break
            await asyncio.sleep(0.05)
        with emulator.lock:  # after the first (baseline) collection
            emulator.state.hostname = "renamed"
        for _ in range(200):
            if fed:
                break
            await asyncio.sleep(0.05)
        await c.stop()
        return c.counters["collections"]

    assert run(collector, scheduled) >= 2
    assert fed and fed[0].attrs is not None and "+hostname renamed" in fed[0].attrs["diff"]
    assert collector.counters["commands_refused"] == 0  # `show ip arp` not asked for


def test_failing_devices_are_counted_logged_once_and_the_others_collected(
        tmp_path: Path, ssh_keys: SshTestKeys, router: Callable[..., IosEmulator],
        kits: Callable[..., RunKit], caplog: pytest.LogCaptureFixture) -> None:
    good = router()
    impostor = generate_keypair(tmp_path / "other", "host")
    devices = (router_toml(tmp_path, ssh_keys, good, "good")
               + router_toml(tmp_path, ssh_keys, good, "rekeyed", known=[known_hosts_line("127.0.0.1", good.port,
                                                                                          impostor)])
               + router_toml(tmp_path, ssh_keys, good, "dead", port=closed_port()))
    kit = kits(tmp_path / "agent", devices)
    collector = the_collector(kit)

    async def three(c: SshCollector) -> None:
        for _ in range(3):
            await c.collect_once()

    with caplog.at_level(logging.WARNING, logger="watchstander.agent.daemon.ssh_collect"):
        run(collector, three)
    assert collector.counters["devices_collected"] == 3 and collector.counters["device_failures"] == 6
    assert collector.failures == {"rekeyed": 3, "dead": 3}
    failed = [r.getMessage() for r in caplog.records if "failed (" in r.getMessage()]
    assert len([m for m in failed if m.startswith("SSH collection from rekeyed failed (HostKeyChanged")]) == 1
    assert len([m for m in failed if m.startswith("SSH collection from dead failed (DeviceUnreachable")]) == 1
    assert SnapshotStore(kit.store, kit.clock).devices() == ["good"]


# ------------------------------------------------------------------------------------------ Linux

def _firewall_skip() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, a system account, sudoers)"
    return firewall_skip_reason()


@pytest.mark.privileged
def test_linux_firewall_ruleset_drift_and_a_poisoned_neighbour_table(tmp_path: Path,
                                                                     kits: Callable[..., RunKit]) -> None:
    reason = _firewall_skip()
    if reason is not None:
        pytest.skip(reason)
    if shutil.which("visudo") is None:
        pytest.skip("needs visudo (Debian: sudo)")
    attacker_mac = "02:00:5e:00:00:66"
    with start_linux_firewall("col") as fw:
        devices = ssh_device_toml("fw1", fw.mgmt_address, port=fw.ssh_port, user=fw.user, key_file=fw.client_key,
                                  known_hosts=fw.known_hosts, roles=["linux-firewall"])
        kit = kits(tmp_path / "agent", devices)
        fw.run(["ip", "neigh", "replace", ATTACKER_ADDRESS, "lladdr", attacker_mac, "dev", "ext0", "nud", "stale"])
        fw.run(["ip", "neigh", "replace", "192.168.56.20", "lladdr", "02:00:5e:00:00:20", "dev", "ext0",
                "nud", "stale"])
        arp_found: list[Finding] = []
        arp_detector = ArpSpoofDetector(ArpSpoofConfig(), arp_found.append)
        drift_found: list[Finding] = []
        drift_detector = ConfigDriftDetector(DriftConfig(), drift_found.append)

        # As docs/playbooks.md provisions the account, sudo refuses to list the ruleset.
        collector = the_collector(kit)

        async def once(c: SshCollector) -> list[Event]:
            return await c.collect_once()

        events = run(collector, once)
        assert collector.counters["commands_refused"] == 1 and collector.counters["device_failures"] == 0
        learned = {ev.src for ev in events if ev.kind == ARP}  # the agent's own address on mgmt0 too
        assert {ATTACKER_ADDRESS, "192.168.56.20"} <= learned

        with collection_sudo_rule(fw.user):
            collector = the_collector(kit)

            async def rounds(c: SshCollector) -> list[list[Event]]:
                out = [await c.collect_once(), await c.collect_once()]
                # Changed on the device: a rule added by hand, an address blocked by a playbook (state,
                # not configuration), and the attacker answering for .7 as well.
                fw.nft("add", "rule", "inet", "watchstander", "input", "tcp", "dport", "2323", "drop")
                fw.nft("add", "element", "inet", "watchstander", "block_v4", "{ 192.0.2.1 timeout 10m }")
                fw.run(["ip", "neigh", "replace", "192.168.56.7", "lladdr", attacker_mac, "dev", "ext0",
                        "nud", "stale"])
                out.append(await c.collect_once())
                return out

            clean1, clean2, changed = run(collector, rounds)
        assert collector.counters["commands_refused"] == 0
        snaps = SnapshotStore(kit.store, kit.clock)
        ruleset = snaps.baseline("fw1", "nft -j list ruleset")
        assert ruleset is not None and ruleset.auto and '"block_v4"' in ruleset.snapshot.text

        feed(arp_detector, clean1 + clean2)
        feed(drift_detector, clean1 + clean2)
        assert arp_found == [] and drift_found == []  # a clean table, twice, and no drift

        feed(drift_detector, changed)
        assert len(drift_found) == 1
        diff = drift_found[0].attributes["diff"]
        assert "2323" in diff and "192.0.2.1" not in diff

        feed(arp_detector, changed)
        assert len(arp_found) == 1
        f = arp_found[0]
        assert f.entities["attacker_mac"] == attacker_mac and f.entities["victim"] == fw.mgmt_address
        # .7 is the newly claimed address; the MAC already held the attacker's own .1.
        assert f.entities["impersonated"] == "192.168.56.7" and f.counts["claimed_addresses"] == 2
