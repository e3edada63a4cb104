"""One executor per registered action: the bridge from a rendered step to a connector call.

Executors receive only rendered steps, whose every substituted value passed its input type, and
a `Devices` directory that turns an inventory name into a connector target (credentials
included, read when the device is used). `build_executors` returns a plain dict keyed by action
name; a test checks that every registered action has exactly one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from watchstander.connectors.capture import capture
from watchstander.connectors.snmp import SnmpTarget, snmp_get, snmp_set
from watchstander.connectors.ssh import SshPool, SshTarget
from watchstander.connectors.webhook import WebhookTarget, post_json

from .actions import (
    NotifyWebhookArgs,
    PacketsCaptureArgs,
    SnmpGetArgs,
    SnmpSetArgs,
    SshCommandArgs,
    SshConfigArgs,
    WaitArgs,
)
from .model import RenderedStep
from .runner import ActionResult, Executor

_A = TypeVar("_A")
_FILE_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class Devices(Protocol):
    """Connector targets by inventory name; raises a DeviceError when a device cannot be used."""

    def ssh(self, name: str) -> SshTarget: ...

    def snmp(self, name: str) -> SnmpTarget: ...

    def webhook(self, name: str) -> WebhookTarget: ...


@dataclass
class Environment:
    """What the executors of one runner share: devices, the SSH connection pool, where captures go."""

    devices: Devices
    ssh: SshPool
    capture_dir: Path
    capture_max_bytes: int = 512 * 1024 * 1024
    label: str = "run"                              # names capture files: run-<id>
    now: Callable[[], datetime] = datetime.now
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


def _args(step: RenderedStep, kind: type[_A]) -> _A:
    if not isinstance(step.args, kind):
        raise TypeError(f"step {step.id}: {step.action} got {type(step.args).__name__}")
    return step.args


def build_executors(env: Environment) -> dict[str, Executor]:
    """The executor of every registered action, bound to one environment."""

    async def ssh_command(step: RenderedStep, timeout_s: float) -> ActionResult:
        args = _args(step, SshCommandArgs)
        res = await env.ssh.run(env.devices.ssh(args.target), args.command_line(), timeout_s)
        output = res.stdout + (("\n" + res.stderr) if res.stderr else "")
        return ActionResult(exit_status=res.exit_status, output=output)

    async def ssh_config(step: RenderedStep, timeout_s: float) -> ActionResult:
        args = _args(step, SshConfigArgs)
        res = await env.ssh.configure(env.devices.ssh(args.target), args.lines, save=args.save, timeout_s=timeout_s)
        return ActionResult(exit_status=res.exit_status, output=res.stdout)

    async def snmp_get_(step: RenderedStep, timeout_s: float) -> ActionResult:
        args = _args(step, SnmpGetArgs)
        binds = await snmp_get(env.devices.snmp(args.target), args.oids, timeout_s=timeout_s)
        output = "\n".join(f"{b.oid} = {b.type}: {b.value}" for b in binds)
        return ActionResult(output=output, value=binds[0].value if len(binds) == 1 else None)

    async def snmp_set_(step: RenderedStep, timeout_s: float) -> ActionResult:
        args = _args(step, SnmpSetArgs)
        bind = await snmp_set(env.devices.snmp(args.target), args.oid, args.value_type, args.value,
                              timeout_s=timeout_s)
        return ActionResult(output=f"{bind.oid} = {bind.type}: {bind.value}", value=bind.value)

    async def packets_capture(step: RenderedStep, timeout_s: float) -> ActionResult:
        args = _args(step, PacketsCaptureArgs)
        stamp = env.now().strftime("%Y%m%dT%H%M%S")
        path = env.capture_dir / _FILE_SAFE.sub("_", f"{env.label}-{step.id}-{args.interface}-{stamp}.pcap")
        res = await capture(args.interface, path, args.hosts, args.ports, duration_s=min(args.duration_s, timeout_s),
                            max_packets=args.max_packets, snaplen=args.snaplen, max_bytes=env.capture_max_bytes)
        return ActionResult(output=f"{res.packets} packet(s), {res.bytes} bytes to {res.path} (sha256 {res.sha256}); "
                                   f"stopped by {res.stopped_by}",
                            value=res.packets, artifacts=(f"{res.path}#sha256={res.sha256}",))

    async def notify_webhook(step: RenderedStep, timeout_s: float) -> ActionResult:
        args = _args(step, NotifyWebhookArgs)
        target = env.devices.webhook(args.webhook)
        payload = {"type": "watchstander.notify", "title": args.title, "message": args.message,
                   "severity": args.severity, "fields": dict(args.fields)}
        status = await post_json(target, payload, timeout_s=timeout_s)
        return ActionResult(output=f"{target.shown_url} answered HTTP {status}", value=status)

    async def wait(step: RenderedStep, timeout_s: float) -> ActionResult:
        args = _args(step, WaitArgs)
        await env.sleep(min(args.seconds, timeout_s))
        return ActionResult(output=f"waited {args.seconds} s")

    table: Mapping[str, Executor] = {
        "ssh.command": ssh_command,
        "ssh.config": ssh_config,
        "snmp.get": snmp_get_,
        "snmp.set": snmp_set_,
        "packets.capture": packets_capture,
        "notify.webhook": notify_webhook,
        "wait": wait,
    }
    return dict(table)
