"""SSH collection: read-only commands on inventory devices on a schedule; snapshots, drift and ARP tables.

Every `[sources.ssh] every_s` seconds each collected device is asked, over one pooled SSH
connection with its host key verified, for its configuration and its ARP table:

| platform  | config (drift)                    | ARP table     |
|-----------|-----------------------------------|---------------|
| cisco-ios | `show running-config`             | `show ip arp` |
| linux     | `sudo -n nft -j list ruleset`     | `ip -j neigh` |

Outputs are normalised (lines that change without the configuration changing are dropped: IOS
timestamps and `ntp clock-period`, nftables counters, handles and timed set elements) and stored as
snapshots (`store/snapshots.py`): an unchanged output only moves its last-seen time.

Drift: a device's first configuration snapshot becomes its baseline, marked `auto`; every later
baseline is one an operator approved (`watchstander collect baseline DEVICE`). While the latest
snapshot differs from the baseline, each collection sends one `config_drift` event with the
unified diff (bounded); the drift detector keeps that one finding per device, command and baseline.

ARP tables become ARP events for the arpspoof detector. A binding the device had already learned
at the previous collection is sent as a plain claim (no ARP operation), which keeps the detector's
view of who holds which address fresh without counting anything; a binding that is new or whose
MAC changed is sent as what taught it to the device, an unsolicited unicast reply. So a table
where several addresses resolve to one MAC, or where an address changed its MAC since the last
collection, raises "ARP cache poisoning"; a stable table with one address per MAC stays quiet.
The device's own addresses (IOS age `-`) and incomplete entries are left out.

A device that fails (unreachable, host key unknown or changed, refused login, a credential missing)
is counted and logged with its name, at most once per `failure_log_s` for the same kind of
failure; the collector goes on with the other devices.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from watchstander.connectors.errors import DeviceError
from watchstander.connectors.events import ARP, LOG, Event
from watchstander.connectors.ssh import CommandResult, SshPool, SshTarget

from ..app.collection import config_diff
from ..app.wiring import App
from ..clock import Clock
from ..config.ssh_collection import SshCollection
from ..detection.detectors.drift import DRIFT_EVENT
from ..errors import ConfigError
from ..store.snapshots import Recorded, SnapshotStore
from .sources import Sink, Source

log = logging.getLogger(__name__)

CommandKind = Literal["config", "arp"]
# The binding a table entry stands for was taught by a frame sent to the device itself; which MAC
# that frame was addressed to is not in the table, only that it was not a broadcast.
TABLE_ETH_DST = "00:00:00:00:00:00"
ACTOR = "watchstander:collector"


@dataclass(frozen=True)
class CollectCommand:
    """One read-only command: its stored name, the line sent, what it collects and how it is normalised."""

    name: str
    line: str
    kind: CommandKind
    normalise: Callable[[str], str]


@dataclass(frozen=True)
class CollectedDevice:
    """An inventory device as the collector sees it."""

    name: str
    platform: str
    address: str


# -- normalising and parsing ----------------------------------------------------------------------

_IOS_VOLATILE = re.compile(
    r"^(?:Building configuration\.\.\.|Current configuration\s*:.*|! Last configuration change at .*"
    r"|! NVRAM config last updated at .*|! No configuration change since last restart.*|ntp clock-period \d+)\s*$")


def normalise_ios_config(text: str) -> str:
    """`show running-config` without the lines that change when the configuration does not."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    kept = [line for line in lines if not _IOS_VOLATILE.match(line)]
    while kept and not kept[0]:
        kept.pop(0)
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


def _strip_nft(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        timed = "timeout" in (value.get("flags") or ()) or "dynamic" in (value.get("flags") or ())
        for key, item in value.items():
            if key in ("handle", "packets", "bytes", "expires"):
                continue
            if key == "elem" and timed:
                continue  # addresses a playbook blocks for a while are state, not configuration
            out[key] = _strip_nft(item)
        return out
    if isinstance(value, list):
        return [_strip_nft(item) for item in value]
    return value


def normalise_nft_json(text: str) -> str:
    """`nft -j list ruleset` as indented JSON without counters, handles, metainfo or timed set elements."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text  # not JSON (an old nft): kept as it came, so a change still shows
    if isinstance(doc, dict) and isinstance(doc.get("nftables"), list):
        doc["nftables"] = [item for item in doc["nftables"] if not (isinstance(item, dict) and "metainfo" in item)]
    return json.dumps(_strip_nft(doc), indent=1, ensure_ascii=False) + "\n"


def _mac(text: str) -> str | None:
    """A MAC as lower-case colon-separated text, from `aa:bb:..`, `aa-bb-..` or IOS's `aabb.ccdd.eeff`."""
    digits = re.sub(r"[.:-]", "", text.strip().lower())
    if not re.fullmatch(r"[0-9a-f]{12}", digits):
        return None
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def _ipv4(text: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        return None


def parse_ios_arp(text: str) -> list[tuple[str, str]]:
    """(address, MAC) of `show ip arp`, without the device's own addresses (age `-`) or incomplete entries."""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] != "Internet" or fields[2] == "-":
            continue
        ip, mac = _ipv4(fields[1]), _mac(fields[3])
        if ip is not None and mac is not None:
            out.append((ip, mac))
    return out


_NEIGH_UNUSABLE = {"FAILED", "INCOMPLETE", "NOARP"}


def parse_linux_neigh(text: str) -> list[tuple[str, str]]:
    """(address, MAC) of `ip -j neigh`'s IPv4 entries that hold a link-layer address."""
    try:
        doc = json.loads(text or "[]")
    except ValueError:
        return []
    out: list[tuple[str, str]] = []
    for entry in doc if isinstance(doc, list) else []:
        if not isinstance(entry, dict):
            continue
        state = entry.get("state") or []
        if isinstance(state, str):
            state = [state]
        if _NEIGH_UNUSABLE & {str(s) for s in state}:
            continue
        ip = _ipv4(str(entry.get("dst", "")))
        mac = _mac(str(entry.get("lladdr", "")))
        if ip is not None and mac is not None:
            out.append((ip, mac))
    return out


def arp_table_text(entries: Sequence[tuple[str, str]]) -> str:
    """An ARP table as stored: one `ADDRESS MAC` line per entry, in address order."""
    unique = sorted(set(entries), key=lambda e: (ipaddress.IPv4Address(e[0]), e[1]))
    return "".join(f"{ip} {mac}\n" for ip, mac in unique)


def parse_arp_table_text(text: str) -> dict[str, str]:
    """The stored form back as address -> MAC (the last MAC of an address wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        ip, _, mac = line.partition(" ")
        if ip and mac:
            out[ip] = mac
    return out


def _ios_arp(text: str) -> str:
    return arp_table_text(parse_ios_arp(text))


def _linux_arp(text: str) -> str:
    return arp_table_text(parse_linux_neigh(text))


def commands_for(platform: str, collect: Sequence[str], *, sudo: bool = True) -> list[CollectCommand]:
    """The read-only commands for a platform, config first."""
    if platform == "cisco-ios":
        table = [CollectCommand("show running-config", "show running-config", "config", normalise_ios_config),
                 CollectCommand("show ip arp", "show ip arp", "arp", _ios_arp)]
    else:
        nft = "nft -j list ruleset"
        table = [CollectCommand(nft, f"sudo -n {nft}" if sudo else nft, "config", normalise_nft_json),
                 CollectCommand("ip -j neigh", "ip -j neigh", "arp", _linux_arp)]
    return [c for c in table if c.kind in collect]


# -- ARP tables to events -------------------------------------------------------------------------

class ArpTables:
    """The ARP table each device had at its previous collection; turns a new table into ARP events."""

    def __init__(self) -> None:
        self.previous: dict[str, dict[str, str]] = {}

    def known(self, device: str) -> bool:
        """Whether a previous table of `device` is known."""
        return device in self.previous

    def seed(self, device: str, table: dict[str, str]) -> None:
        """The previous table, read back from the store after a restart."""
        self.previous[device] = dict(table)

    def events(self, device: CollectedDevice, table: dict[str, str], now: float) -> list[Event]:
        """Plain claims for bindings the device already had, then unsolicited replies for new or changed ones."""
        before = self.previous.get(device.name, {})
        self.previous[device.name] = dict(table)
        source = f"ssh.collect:{device.name}"
        kept: list[Event] = []
        learned: list[Event] = []
        for ip, mac in table.items():
            ref = f"ssh:{device.name}:arp:{ip}"
            if before.get(ip) == mac:
                kept.append(Event(now, source, ARP, src=ip, dst=device.address, host=device.name,
                                  attrs={"hwsrc": mac, "table": device.name}, ref=ref))
            else:
                attrs: dict[str, Any] = {"hwsrc": mac, "op": 2, "eth_dst": TABLE_ETH_DST, "table": device.name}
                if ip in before:
                    attrs["previous_hwsrc"] = before[ip]
                learned.append(Event(now, source, ARP, src=ip, dst=device.address, host=device.name,
                                     attrs=attrs, ref=ref))
        return kept + learned


# -- the source -----------------------------------------------------------------------------------

def _refused(result: CommandResult) -> bool:
    """A non-zero exit, or an IOS `%` error line answering the command."""
    if result.exit_status not in (0, None):
        return True
    first = next((line.strip() for line in result.stdout.splitlines() if line.strip()), "")
    return first.startswith("%")


class SshCollector:
    """The `ssh.collect` source: collects every configured device each `every_s` seconds."""

    def __init__(self, config: SshCollection, devices: Sequence[CollectedDevice],
                 targets: Callable[[str], SshTarget], snapshots: SnapshotStore, clock: Clock,
                 pool: SshPool | None = None) -> None:
        self.name = "ssh.collect"
        self.config = config
        self.devices = list(devices)
        self.counters: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()  # by device name
        self.arp = ArpTables()
        self._targets = targets
        self._snapshots = snapshots
        self._clock = clock
        self._pool = pool or SshPool(max_output=config.max_snapshot)
        self._own_pool = pool is None
        self._sink: Sink | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_logged: dict[str, tuple[float, str]] = {}  # device -> (monotonic time, error kind)
        self._failing: set[str] = set()

    async def start(self, sink: Sink) -> None:
        """Start the schedule (the first collection right away)."""
        self._sink = sink
        self._stop.clear()
        self._task = asyncio.create_task(self._schedule(sink), name="ssh collection")

    async def stop(self) -> None:
        """Stop the schedule, let a collection in progress end, and close the connections."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._own_pool:
            await self._pool.close()

    def describe(self) -> str:
        """What it collects and how often."""
        return (f"collecting {', '.join(self.config.collect)} over SSH from {len(self.devices)} device(s) "
                f"every {self.config.every_s:g} s")

    async def _schedule(self, sink: Sink) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                await self.collect_once(sink)
            except Exception:  # the barrier around this source (STYLE rule 2): log, count, go on
                self.counters["errors"] += 1
                log.exception("SSH collection failed in one round (%d so far); going on", self.counters["errors"])
            wait = max(0.0, self.config.every_s - (time.monotonic() - started))
            try:
                await asyncio.wait_for(self._stop.wait(), wait)
            except TimeoutError:
                pass

    async def collect_once(self, sink: Sink | None = None) -> list[Event]:
        """Collect every device once; events go to `sink` (default: the started one) and are returned."""
        limit = asyncio.Semaphore(self.config.concurrency)

        async def one(device: CollectedDevice) -> list[Event]:
            async with limit:
                return await self._device(device)

        results = await asyncio.gather(*(one(d) for d in self.devices))
        self.counters["collections"] += 1
        events = [ev for batch in results for ev in batch]
        target = sink or self._sink
        if target is not None and events:
            target.feed(events)
        return events

    async def _device(self, device: CollectedDevice) -> list[Event]:
        try:
            events = await self._collect(device)
        except DeviceError as exc:
            self.counters["device_failures"] += 1
            self.failures[device.name] += 1
            self._failing.add(device.name)
            self._log_failure(device.name, type(exc).__name__,
                              f"({type(exc).__name__}, {self.failures[device.name]} failure(s) so far): {exc}")
            return []
        self.counters["devices_collected"] += 1
        if device.name in self._failing:
            self._failing.discard(device.name)
            self._last_logged.pop(device.name, None)
            log.info("SSH collection from %s works again", device.name)
        return events

    def _log_failure(self, device: str, kind: str, message: str) -> None:
        now = time.monotonic()
        last = self._last_logged.get(device)
        if last is None or last[1] != kind or now - last[0] >= self.config.failure_log_s:
            self._last_logged[device] = (now, kind)
            log.warning("SSH collection from %s failed %s", device, message)
        else:
            log.debug("SSH collection from %s failed again: %s", device, message)

    async def _collect(self, device: CollectedDevice) -> list[Event]:
        target = self._targets(device.name)
        loop = asyncio.get_running_loop()
        events: list[Event] = []
        for command in commands_for(device.platform, self.config.collect, sudo=self.config.sudo):
            result = await self._pool.run(target, command.line, self.config.timeout_s)
            if _refused(result):
                self.counters["commands_refused"] += 1
                self._log_failure(f"{device.name} ({command.name})", "refused",
                                  f"(refused): {command.line!r} exited {result.exit_status}: "
                                  f"{(result.stderr or result.stdout).strip()[:200]}")
                continue
            text = command.normalise(result.stdout)
            truncated = result.truncated or len(text) > self.config.max_snapshot
            text = text[:self.config.max_snapshot]
            if command.kind == "arp" and not self.arp.known(device.name):
                previous = await loop.run_in_executor(None, self._snapshots.latest, device.name, command.name)
                if previous is not None:
                    self.arp.seed(device.name, parse_arp_table_text(previous.text))
            record = functools.partial(self._snapshots.record, device.name, command.name, command.kind, text,
                                       truncated=truncated, auto_baseline=command.kind == "config", actor=ACTOR)
            recorded = await loop.run_in_executor(None, record)
            self.counters["snapshots_new" if recorded.new else "snapshots_unchanged"] += 1
            now = self._clock().timestamp()
            if command.kind == "config":
                drift = await loop.run_in_executor(None, self._drift_event, device, command, recorded, now)
                if drift is not None:
                    self.counters["drift_events"] += 1
                    events.append(drift)
            else:
                arp = self.arp.events(device, parse_arp_table_text(text), now)
                self.counters["arp_entries"] += len(arp)
                events.extend(arp)
        return events

    def _drift_event(self, device: CollectedDevice, command: CollectCommand, recorded: Recorded,
                     now: float) -> Event | None:
        baseline = recorded.baseline
        current = recorded.snapshot
        if baseline is None or baseline.snapshot.sha256 == current.sha256:
            return None
        base = baseline.snapshot
        diff = config_diff(base.text, current.text,
                           f"{device.name} {command.name} baseline #{base.id} ({base.first_seen}, "
                           f"approved by {baseline.approved_by}{', auto' if baseline.auto else ''})",
                           f"{device.name} {command.name} #{current.id} ({current.first_seen})")
        return Event(now, f"ssh.collect:{device.name}", LOG, host=device.name,
                     ref=f"ssh:{device.name}:{command.name}@{current.sha256[:12]}",
                     attrs={"type": DRIFT_EVENT, "device": device.name, "command": command.name,
                            "sha256": current.sha256, "snapshot_id": current.id,
                            "baseline_sha256": base.sha256, "baseline_id": base.id,
                            "baseline_approved_by": baseline.approved_by, "baseline_auto": baseline.auto,
                            "diff": diff.text, "diff_truncated": diff.truncated,
                            "lines_added": diff.added, "lines_removed": diff.removed})


def collected_devices(app: App, names: Sequence[str] = ()) -> list[CollectedDevice]:
    """The devices to collect: those named (in that order), else every inventory device with [devices.ssh].

    A named device that is not in the inventory, or has no [devices.ssh], is a ConfigError.
    """
    if not names:
        return [CollectedDevice(d.name, d.platform, d.address) for d in app.devices if d.ssh is not None]
    known = {d.name: d for d in app.devices}
    problems = [("sources.ssh.devices", f"{n!r} is not in the inventory ([[devices]])") for n in names
                if n not in known]
    problems += [("sources.ssh.devices", f"{n!r} has no [devices.ssh] section") for n in names
                 if n in known and known[n].ssh is None]
    if problems:
        raise ConfigError("[sources.ssh] names devices it cannot collect from", problems)
    return [CollectedDevice(n, known[n].platform, known[n].address) for n in names]


def ssh_collect_sources(app: App) -> list[Source]:
    """The `ssh.collect` source when `[sources.ssh] every_s` > 0 (and there is something to collect)."""
    config = app.config.sources.ssh
    if config.every_s <= 0:
        return []
    devices = collected_devices(app, config.devices)
    if not devices:
        log.warning("[sources.ssh] every_s is set but no inventory device has [devices.ssh]: nothing to collect")
        return []
    snapshots = SnapshotStore(app.store, app.clock, app.audit)
    return [SshCollector(config, devices, app.devices.ssh, snapshots, app.clock)]
