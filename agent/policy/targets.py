"""Protected networks: whether an address or network parameter touches anything the site protects."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ..config.model import Asset

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")  # IPv4-mapped IPv6 addresses (RFC 4291 2.5.5.2)


def _as_v4(net: ipaddress.IPv6Network) -> list[ipaddress.IPv4Network]:
    """The IPv4 networks an IPv6 network reaches through the IPv4-mapped range."""
    if not net.overlaps(_MAPPED):
        return []
    if net.prefixlen <= _MAPPED.prefixlen:  # covers the whole mapped range, so every IPv4 address
        return [ipaddress.IPv4Network("0.0.0.0/0")]
    base = int(net.network_address) & 0xFFFFFFFF
    return [ipaddress.IPv4Network((base, net.prefixlen - 96))]


class ProtectedNetworks:
    """The configured protected assets, checked conservatively.

    An address is protected when ANY protected asset holds it, even where a more specific
    unprotected asset (which AssetIndex.lookup would return) carves it out: refusing is the safe
    direction. A network is protected when it overlaps a protected asset in either direction, so
    neither a /24 around a protected host nor a /28 inside a protected /16 gets through, and IPv4
    reached through IPv4-mapped IPv6 (::ffff:a.b.c.d) counts as IPv4.
    """

    def __init__(self, assets: Iterable[Asset]) -> None:
        self._nets: list[tuple[IPNetwork, str]] = [
            (ipaddress.ip_network(a.cidr, strict=False), a.name) for a in assets if a.protected
        ]

    def __bool__(self) -> bool:
        return bool(self._nets)

    def _hit(self, candidates: Iterable[IPNetwork]) -> str | None:
        for cand in candidates:
            for net, name in self._nets:
                if net.version == cand.version and net.overlaps(cand):
                    return name
        return None

    def address(self, value: str) -> str | None:
        """The name of a protected asset holding `value`, or None (also for non-addresses)."""
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return None
        return self.network(str(ipaddress.ip_network(ip)))

    def network(self, value: str) -> str | None:
        """The name of a protected asset overlapping network `value`, or None (also for non-networks)."""
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return None
        candidates: list[IPNetwork] = [net]
        if isinstance(net, ipaddress.IPv6Network):
            candidates.extend(_as_v4(net))
        return self._hit(candidates)
