"""The site's asset inventory from config: which networks matter and which must never be touched."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .config.model import Asset


class AssetIndex:
    """Longest-prefix lookup of addresses in the configured assets."""

    def __init__(self, assets: Iterable[Asset]) -> None:
        nets = [(ipaddress.ip_network(a.cidr), a) for a in assets]
        self._nets = sorted(nets, key=lambda na: na[0].prefixlen, reverse=True)

    def lookup(self, address: str) -> Asset | None:
        """The most specific asset holding `address`, or None (also for non-addresses)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for net, asset in self._nets:
            if ip.version == net.version and ip in net:
                return asset
        return None

    def is_protected(self, address: str) -> bool:
        """True when `address` lies in a protected asset."""
        asset = self.lookup(address)
        return bool(asset and asset.protected)

    def is_scanner(self, address: str) -> bool:
        """True when `address` lies in an asset marked `scanner = true` (the site's own scanner)."""
        asset = self.lookup(address)
        return bool(asset and asset.scanner)
