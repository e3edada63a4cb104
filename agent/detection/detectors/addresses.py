"""Which addresses are the site's own, and which destinations an allow-list expects: cached lookups."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from itertools import islice
from typing import Any

CACHE_MAX = 131_072

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(text, str):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class NetworkSet:
    """Membership of addresses in a fixed set of networks; answers are cached (bounded)."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        # IPv4 as (network, mask) integers: inet_pton and two integer operations are several
        # times cheaper than ipaddress for the flood of distinct sources a scan brings.
        self._v4 = tuple((int(n.network_address), int(n.netmask)) for n in self.networks if n.version == 4)
        self._cache: dict[str, bool] = {}

    def __contains__(self, address: object) -> bool:
        """True when `address` (a string) lies in one of the networks; False for anything else."""
        if type(address) is not str:
            return False
        hit = self._cache.get(address)
        return self._lookup(address) if hit is None else hit

    def _lookup(self, address: str) -> bool:
        try:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
        except (OSError, ValueError):  # not IPv4 text; ValueError: an embedded NUL
            ip = _address(address)
            hit = ip is not None and any(ip.version == n.version and ip in n for n in self.networks)
        else:
            hit = False
            for net, mask in self._v4:
                if value & mask == net:
                    hit = True
                    break
        cache = self._cache
        if len(cache) >= CACHE_MAX:
            # The older half goes (dicts keep insertion order): clearing it all made a site with more
            # distinct addresses than the cache holds miss on nearly every lookup.
            for old in list(islice(cache, CACHE_MAX // 2)):
                del cache[old]
        cache[address] = hit
        return hit


class DestinationAllowList:
    """Allow-list entries `CIDR`, `ADDR:PORT`, `[v6]:PORT`, `CIDR:PORT` or `*:PORT` (validated by config)."""

    def __init__(self, entries: Iterable[str], ports: Iterable[int] = ()) -> None:
        self.any_host_ports = frozenset(ports)
        nets: dict[int | None, list[str]] = {}
        for item in entries:
            host, port = item, None
            if item.startswith("["):
                host, _, rest = item[1:].partition("]")
                port = int(rest[1:]) if rest.startswith(":") else None
            elif item.count(":") == 1:
                host, p = item.split(":")
                port = int(p)
            if host == "*":
                if port is not None:
                    self.any_host_ports |= {port}
                continue
            nets.setdefault(port, []).append(host)
        self._by_port = {port: NetworkSet(hosts) for port, hosts in nets.items()}

    def allows(self, address: str | None, port: int | None) -> bool:
        """True when traffic to `address`:`port` is expected."""
        if port in self.any_host_ports:
            return True
        anywhere = self._by_port.get(None)
        if anywhere is not None and address in anywhere:
            return True
        on_port = self._by_port.get(port) if port is not None else None
        return on_port is not None and address in on_port
