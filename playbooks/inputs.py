"""Typed playbook inputs: the security boundary between a suggestion's parameters and a device.

A parameter reaches a device command only after its input type accepted it, and every type here
accepts only values drawn from `SAFE_VALUE`'s alphabet (letters, digits and `. _ : / -`), so no
value can carry white space, quotes or shell metacharacters. There is no free-text input type.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .templates import Value

SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:/-]+$")
INTERFACE = re.compile(r"^[A-Za-z][A-Za-z0-9/._:-]{0,63}$")
DEVICE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
ENUM_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_INTEGER_TEXT = re.compile(r"^[+-]?[0-9]{1,18}$")


class Inventory(Protocol):
    """What the policy guard knows about devices: the roles of one, or None if it is unknown."""

    def roles_of(self, device: str) -> frozenset[str] | None:
        """The roles of `device` in the inventory, or None when no such device exists."""

    def with_role(self, role: str) -> list[str]:
        """The names of every device that has `role`."""


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = Field(min_length=1, max_length=500)
    many: bool = Field(False, description="a list of values rather than one")
    max_items: int = Field(16, ge=1, le=256)
    default: Any = None

    @model_validator(mode="after")
    def _default_is_valid(self) -> _Input:
        if self.default is not None:
            self.check(self.default)
        return self

    def check_one(self, value: object) -> Value:
        """Return the normalised value or raise ValueError saying why it is not acceptable."""
        raise NotImplementedError

    def samples(self) -> list[Value]:
        """Representative valid values, used to type-check step arguments at load time."""
        raise NotImplementedError

    def check(self, value: object) -> Value | list[Value]:
        """Validate one value, or a list of them for a `many` input."""
        if not self.many:
            return self.check_one(value)
        if not isinstance(value, (list, tuple)):
            raise ValueError("expected a list")
        if not 1 <= len(value) <= self.max_items:
            raise ValueError(f"expected 1 to {self.max_items} values, got {len(value)}")
        out: list[Value] = []
        for index, item in enumerate(value):
            try:
                out.append(self.check_one(item))
            except ValueError as exc:
                raise ValueError(f"item {index}: {exc}") from None
        return out

    def describe(self) -> dict[str, Any]:
        """This input's type and constraints as plain data (for a model prompt or `show`)."""
        data = self.model_dump(exclude_defaults=True)
        data["type"] = getattr(self, "type")
        data["required"] = self.default is None
        if self.many:
            data["max_items"] = self.max_items
        else:
            data.pop("max_items", None)
        return data


def _text(value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    if not 0 < len(value) <= limit:
        raise ValueError(f"expected 1 to {limit} characters")
    return value


def _no_scope(text: str) -> str:
    # ipaddress accepts an IPv6 zone ("fe80::1%eth0") of any characters, including `$(...)`.
    if "%" in text:
        raise ValueError("zone (scope id) suffixes are not allowed")
    return text


def check_ipv4(value: object) -> str:
    """A dotted-quad IPv4 address (no leading zeros), normalised."""
    try:
        return str(ipaddress.IPv4Address(_text(value, 15)))
    except ipaddress.AddressValueError as exc:
        raise ValueError(f"not an IPv4 address: {exc}") from None


def check_ipv6(value: object) -> str:
    """An IPv6 address without zone, in compressed form."""
    try:
        return str(ipaddress.IPv6Address(_no_scope(_text(value, 45))))
    except ipaddress.AddressValueError as exc:
        raise ValueError(f"not an IPv6 address: {exc}") from None


def check_ip(value: object) -> str:
    """An IPv4 or IPv6 address, normalised."""
    text = _no_scope(_text(value, 45))
    return check_ipv6(text) if ":" in text else check_ipv4(text)


class Ipv4Input(_Input):
    """An IPv4 address."""

    type: Literal["ipv4"]

    def check_one(self, value: object) -> Value:
        """Return the normalised address."""
        return check_ipv4(value)

    def samples(self) -> list[Value]:
        """Documentation addresses (RFC 5737)."""
        return ["192.0.2.10"]


class Ipv6Input(_Input):
    """An IPv6 address."""

    type: Literal["ipv6"]

    def check_one(self, value: object) -> Value:
        """Return the compressed address."""
        return check_ipv6(value)

    def samples(self) -> list[Value]:
        """Documentation addresses (RFC 3849)."""
        return ["2001:db8::10"]


class IpInput(_Input):
    """An IPv4 or IPv6 address."""

    type: Literal["ip"]

    def check_one(self, value: object) -> Value:
        """Return the normalised address."""
        return check_ip(value)

    def samples(self) -> list[Value]:
        """One address of each family."""
        return ["192.0.2.10", "2001:db8::10"]


class CidrInput(_Input):
    """An IP network in prefix notation, no broader than the declared minimum prefix lengths."""

    type: Literal["cidr"]
    family: Literal["any", "ipv4", "ipv6"] = "any"
    min_prefix_v4: int = Field(24, ge=0, le=32)
    min_prefix_v6: int = Field(64, ge=0, le=128)

    def check_one(self, value: object) -> Value:
        """Return the network in canonical form."""
        text = _no_scope(_text(value, 49))
        if "/" not in text:
            raise ValueError("expected ADDRESS/PREFIX")
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise ValueError(f"not a network: {exc}") from None
        if self.family != "any" and f"ipv{net.version}" != self.family:
            raise ValueError(f"expected an {self.family} network")
        floor = self.min_prefix_v4 if net.version == 4 else self.min_prefix_v6
        if net.prefixlen < floor:
            raise ValueError(f"prefix /{net.prefixlen} is broader than the allowed /{floor}")
        return str(net)

    def samples(self) -> list[Value]:
        """Networks of the allowed families at the broadest allowed prefix."""
        out: list[Value] = []
        if self.family in ("any", "ipv4"):
            out.append(str(ipaddress.ip_network("192.0.2.0/32").supernet(new_prefix=self.min_prefix_v4)))
        if self.family in ("any", "ipv6"):
            out.append(str(ipaddress.ip_network("2001:db8::/128").supernet(new_prefix=self.min_prefix_v6)))
        return out


class HostnameInput(_Input):
    """A host name per RFC 1123 (letters, digits, hyphens; dot-separated labels), lower-cased."""

    type: Literal["hostname"]

    def check_one(self, value: object) -> Value:
        """Return the lower-cased name."""
        text = _text(value, 253)
        if not all(_LABEL.fullmatch(label) for label in text.split(".")):
            raise ValueError("not an RFC 1123 host name")
        return text.lower()

    def samples(self) -> list[Value]:
        """A reserved example name."""
        return ["host.example.net"]


class InterfaceInput(_Input):
    """A network interface name such as eth0, GigabitEthernet1/0/24 or bond0.100."""

    type: Literal["interface"]

    def check_one(self, value: object) -> Value:
        """Return the name unchanged."""
        text = _text(value, 64)
        if not INTERFACE.fullmatch(text):
            raise ValueError("not an interface name (letter first, then letters, digits and / . _ : -)")
        return text

    def samples(self) -> list[Value]:
        """A typical name."""
        return ["eth0"]


class IntegerInput(_Input):
    """A whole number within declared bounds (both bounds are required)."""

    type: Literal["integer"]
    min: int
    max: int

    @model_validator(mode="after")
    def _ordered(self) -> IntegerInput:
        if self.min > self.max:
            raise ValueError("min is greater than max")
        return self

    def check_one(self, value: object) -> Value:
        """Return the integer; decimal strings are accepted, booleans and fractions are not."""
        if isinstance(value, bool):
            raise ValueError("expected an integer, got a boolean")
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
            value = int(value)
        if not isinstance(value, int):
            raise ValueError(f"expected an integer, got {type(value).__name__}")
        if not self.min <= value <= self.max:
            raise ValueError(f"{value} is outside {self.min}..{self.max}")
        return value

    def samples(self) -> list[Value]:
        """Both bounds."""
        return [self.min, self.max] if self.min != self.max else [self.min]


class EnumInput(_Input):
    """One of a fixed list of values declared in the playbook."""

    type: Literal["enum"]
    values: list[Annotated[str, Field(pattern=ENUM_VALUE.pattern)]] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _unique(self) -> EnumInput:
        if len(set(self.values)) != len(self.values):
            raise ValueError("enum values must be unique")
        return self

    def check_one(self, value: object) -> Value:
        """Return the value when it is exactly one of the declared values."""
        if not isinstance(value, str) or value not in self.values:
            raise ValueError(f"expected one of {', '.join(self.values)}")
        return value

    def samples(self) -> list[Value]:
        """Every declared value."""
        return list(self.values)


class IdentifierInput(_Input):
    """An opaque id such as an incident id: letters, digits and . _ : - only."""

    type: Literal["identifier"]

    def check_one(self, value: object) -> Value:
        """Return the id unchanged."""
        text = _text(value, 128)
        if not IDENTIFIER.fullmatch(text):
            raise ValueError("not an identifier (letters, digits and . _ : - only)")
        return text

    def samples(self) -> list[Value]:
        """A typical id."""
        return ["inc-2026-0001"]


class DeviceInput(_Input):
    """A reference to an inventory device that must hold `role`; it selects a step's target."""

    type: Literal["device"]
    role: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")

    def check_one(self, value: object) -> Value:
        """Return the reference when it is well-formed (the role is checked against the inventory)."""
        text = _text(value, 64)
        if not DEVICE_REF.fullmatch(text):
            raise ValueError("not a device reference (letters, digits and . _ - only)")
        return text

    def samples(self) -> list[Value]:
        """A typical reference."""
        return ["device-1"]


InputSpec = Annotated[
    Ipv4Input | Ipv6Input | IpInput | CidrInput | HostnameInput | InterfaceInput | IntegerInput
    | EnumInput | IdentifierInput | DeviceInput,
    Field(discriminator="type"),
]
