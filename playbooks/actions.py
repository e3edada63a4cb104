"""The action registry: every step names one of these, and its arguments must match the schema.

What an action needs is declared here once, at registration: whether a step using it needs an
operator's approval, which secrets the executor will ask for, its default and longest timeout.
Executors are attached in a later change; the schemas already bind what a playbook may say.

Why `ssh.command` takes an argv list: an SSH server always hands the command line to the remote
user's shell, so the line is built with `shlex.join`, which quotes every element. Parameters are
substituted into elements only after their input type accepted them (none can contain white
space, quotes or metacharacters), so a parameter can neither add a word nor start a new command.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import UnknownActionError

ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

DeviceRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Oid = Annotated[str, Field(pattern=r"^[0-2](\.[0-9]{1,10}){1,127}$")]
Line = Annotated[str, Field(min_length=1, max_length=512)]


class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _no_control(items: list[str]) -> list[str]:
    for item in items:
        if _CONTROL.search(item):
            raise ValueError("control characters (newlines, tabs, NUL) are not allowed")
    return items


class SshCommandArgs(_Args):
    """Run one command over SSH on `target`; `argv` is quoted for the remote shell word by word."""

    target: DeviceRef
    argv: list[Line] = Field(min_length=1, max_length=64)

    @field_validator("argv")
    @classmethod
    def _argv(cls, v: list[str]) -> list[str]:
        return _no_control(v)

    def command_line(self) -> str:
        """The exact line sent to the SSH server."""
        return shlex.join(self.argv)


class SshConfigArgs(_Args):
    """Enter configuration mode on a network device over SSH and send `lines` in order."""

    target: DeviceRef
    platform: Literal["cisco-ios"]
    lines: list[Line] = Field(min_length=1, max_length=200)
    save: bool = Field(False, description="copy running-config to startup-config afterwards")

    @field_validator("lines")
    @classmethod
    def _lines(cls, v: list[str]) -> list[str]:
        return _no_control(v)


class SnmpGetArgs(_Args):
    """Read numeric OIDs from `target`."""

    target: DeviceRef
    oids: list[Oid] = Field(min_length=1, max_length=32)


class SnmpSetArgs(_Args):
    """Write one OID on `target`."""

    target: DeviceRef
    oid: Oid
    value_type: Literal["integer", "unsigned", "octet-string", "ip-address"]
    value: int | str

    @model_validator(mode="after")
    def _value_matches_type(self) -> SnmpSetArgs:
        if self.value_type in ("integer", "unsigned") and not isinstance(self.value, int):
            raise ValueError(f"value must be an integer for value_type {self.value_type}")
        if self.value_type == "unsigned" and isinstance(self.value, int) and not 0 <= self.value < 2**32:
            raise ValueError("unsigned value out of range")
        if self.value_type == "integer" and isinstance(self.value, int) and not -(2**31) <= self.value < 2**31:
            raise ValueError("integer value out of range")
        if self.value_type == "ip-address":
            ipaddress.IPv4Address(str(self.value))
        if self.value_type == "octet-string" and (not isinstance(self.value, str) or len(self.value) > 255):
            raise ValueError("octet-string value must be a string of at most 255 characters")
        return self


def _host_or_network(value: str) -> str:
    if "%" in value:
        raise ValueError("zone (scope id) suffixes are not allowed")
    return str(ipaddress.ip_network(value, strict=True)) if "/" in value else str(ipaddress.ip_address(value))


class PacketsCaptureArgs(_Args):
    """Capture on the sensor's `interface` traffic to or from `hosts` (and `ports`, if given)."""

    interface: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9/._:-]{0,63}$")
    hosts: list[str] = Field(min_length=1, max_length=64)
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=list, max_length=32)
    duration_s: int = Field(ge=1, le=3600)
    max_packets: int = Field(100_000, ge=1, le=10_000_000)
    snaplen: int = Field(65535, ge=64, le=65535)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return [_host_or_network(h) for h in v]


class NotifyWebhookArgs(_Args):
    """Post a message to a webhook configured by name (its URL and token are secrets in the config)."""

    webhook: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    title: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=4000)
    severity: Literal["info", "warning", "critical"] = "info"
    fields: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
                 Annotated[str, Field(max_length=500)]] = Field(default_factory=dict, max_length=32)


class WaitArgs(_Args):
    """Pause between steps (for instance to let a change settle before a post-check)."""

    seconds: int = Field(ge=1, le=3600)


@dataclass(frozen=True)
class ActionSpec:
    """One registered action: its argument schema and what it needs, declared once."""

    name: str
    args_model: type[BaseModel]
    summary: str
    requires_approval: bool
    changes_state: bool
    secrets: tuple[str, ...] = ()
    target_field: str | None = None
    default_timeout_s: int = 30
    max_timeout_s: int = 600
    # The shortest timeout that can succeed given the arguments (a capture's duration, a wait's length).
    timeout_floor: Callable[[Any], int] = lambda _args: 1


# dotted name -> spec; filled by register_action below and by nothing else at import time.
ACTIONS: dict[str, ActionSpec] = {}


def register_action(spec: ActionSpec) -> ActionSpec:
    """Add an action to the registry; a duplicate or malformed name raises ValueError."""
    if not ACTION_NAME.fullmatch(spec.name):
        raise ValueError(f"action name {spec.name!r} is not a dotted lower-case name")
    if spec.name in ACTIONS:
        raise ValueError(f"action {spec.name!r} is already registered")
    ACTIONS[spec.name] = spec
    return spec


def get_action(name: str) -> ActionSpec:
    """The registered action called `name`; raises UnknownActionError."""
    try:
        return ACTIONS[name]
    except KeyError:
        raise UnknownActionError(name) from None


for _spec in (
    ActionSpec("ssh.command", SshCommandArgs, "run one command over SSH",
               requires_approval=True, changes_state=True, secrets=("ssh.credentials",),
               target_field="target", default_timeout_s=60, max_timeout_s=600),
    ActionSpec("ssh.config", SshConfigArgs, "send configuration lines to a network device over SSH",
               requires_approval=True, changes_state=True, secrets=("ssh.credentials",),
               target_field="target", default_timeout_s=60, max_timeout_s=300),
    ActionSpec("snmp.get", SnmpGetArgs, "read OIDs over SNMP",
               requires_approval=False, changes_state=False, secrets=("snmp.read",),
               target_field="target", default_timeout_s=10, max_timeout_s=60),
    ActionSpec("snmp.set", SnmpSetArgs, "write one OID over SNMP",
               requires_approval=True, changes_state=True, secrets=("snmp.write",),
               target_field="target", default_timeout_s=10, max_timeout_s=60),
    ActionSpec("packets.capture", PacketsCaptureArgs, "capture packets on a sensor interface",
               requires_approval=True, changes_state=False, default_timeout_s=30, max_timeout_s=3660,
               timeout_floor=lambda args: int(args.duration_s) + 5),
    ActionSpec("notify.webhook", NotifyWebhookArgs, "post a message to a configured webhook",
               requires_approval=False, changes_state=False, secrets=("notify.webhook",),
               default_timeout_s=15, max_timeout_s=60),
    ActionSpec("wait", WaitArgs, "pause between steps",
               requires_approval=False, changes_state=False, default_timeout_s=5, max_timeout_s=3610,
               timeout_floor=lambda args: int(args.seconds) + 1),
):
    register_action(_spec)
