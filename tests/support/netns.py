"""Network namespaces and veth pairs for test devices, torn down even when a test fails.

A `Lab` owns everything it creates: namespaces (named with this process's pid), veth pairs
(one end in the host or a namespace, the other in a namespace) and the processes started inside.
`Lab.close()` kills those processes, deletes the namespaces and the host-side veth ends.

    with Lab("fw") as lab:
        fw = lab.namespace("fw")
        link = lab.veth(None, fw)                    # host <-> fw, a free 10.2xx.x.x/30
        fw.run(["ip", "-o", "addr"])
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

# 10.200.0.0-10.207.255.255: 131072 /30 subnets; private, and rarely used by real networks.
_POOL = ipaddress.IPv4Network("10.200.0.0/13")
_handed_out: set[ipaddress.IPv4Network] = set()
_counter = itertools.count(1)
# Host-side veth names must be unique across every Lab of this process.
_link_numbers = itertools.count()


class NetnsError(RuntimeError):
    """A namespace command failed; the message holds the command and its stderr."""


def netns_skip_reason() -> str | None:
    """Why namespaces cannot be made here (not root, no `ip`), or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`)"
    return None


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host namespace has an address in or a route to."""
    nets: list[ipaddress.IPv4Network] = []
    for line in _run(["ip", "-o", "-4", "addr", "show"]).stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            nets.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    for line in _run(["ip", "-4", "route", "show", "table", "all"]).stdout.splitlines():
        words = line.split()
        if not words:
            continue
        dest = words[1] if words[0] in {"local", "broadcast", "unicast", "blackhole", "unreachable"} else words[0]
        with contextlib.suppress(ValueError):
            net = ipaddress.IPv4Network(dest, strict=False)
            if net.prefixlen > 0:
                nets.append(net)
    return nets


def free_subnet(prefixlen: int = 30) -> ipaddress.IPv4Network:
    """A subnet of 10.200.0.0/13 that no host address or route overlaps, chosen by pid."""
    used = host_networks()
    count = 2 ** (prefixlen - _POOL.prefixlen)
    start = (os.getpid() * 7919 + next(_counter) * 104729) % count
    for step in range(4096):
        index = (start + step * 257) % count
        candidate = ipaddress.IPv4Network(
            (int(_POOL.network_address) + index * 2 ** (32 - prefixlen), prefixlen)
        )
        if candidate in _handed_out or any(candidate.overlaps(net) for net in used):
            continue
        _handed_out.add(candidate)
        return candidate
    raise NetnsError("no free subnet in 10.200.0.0/13")


@dataclass
class Namespace:
    """One network namespace; processes started with `popen` are killed when the lab closes."""

    name: str
    processes: list[subprocess.Popen[bytes]]

    def argv(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs argv inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 15.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside the namespace and wait for it; raise NetnsError on failure if check."""
        proc = subprocess.run(
            self.argv(argv), capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
        if check and proc.returncode != 0:
            raise NetnsError(f"[{self.name}] {' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a long-running process inside the namespace (killed at teardown)."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(self.argv(argv), **kwargs)  # type: ignore[call-overload]
        self.processes.append(proc)
        return proc

    def pids(self) -> list[int]:
        """Pids of every process living in this namespace (started by us or their children)."""
        out = _run(["ip", "netns", "pids", self.name], check=False).stdout
        return [int(word) for word in out.split() if word.isdigit()]


@dataclass(frozen=True)
class Link:
    """A veth pair: `left` end (host when left_ns is None) and `right` end, each with an address."""

    left_ns: Namespace | None
    left_name: str
    left: ipaddress.IPv4Interface
    right_ns: Namespace
    right_name: str
    right: ipaddress.IPv4Interface


class Lab:
    """Owner of the namespaces, veths and processes one test device needs."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.namespaces: list[Namespace] = []
        self.host_links: list[str] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def namespace(self, role: str) -> Namespace:
        """Create namespace `ws-<tag>-<role>-<pid>` with lo up."""
        ns = Namespace(f"ws-{self.tag}-{role}-{os.getpid()}", [])
        _run(["ip", "netns", "add", ns.name])
        self.namespaces.append(ns)
        ns.run(["ip", "link", "set", "lo", "up"])
        return ns

    def veth(
        self,
        left_ns: Namespace | None,
        right_ns: Namespace,
        *,
        left: str | None = None,
        right: str | None = None,
        left_name: str | None = None,
        right_name: str = "eth0",
    ) -> Link:
        """Join two namespaces (left None: the host) with a veth pair and address both ends.

        Without addresses, a free /30 is picked: left gets .1, right gets .2. Addresses are
        given as `ADDR/PREFIX`.
        """
        if left is None or right is None:
            net = free_subnet()
            hosts = list(net.hosts())
            left_if = ipaddress.IPv4Interface(f"{hosts[0]}/{net.prefixlen}")
            right_if = ipaddress.IPv4Interface(f"{hosts[1]}/{net.prefixlen}")
        else:
            left_if, right_if = ipaddress.IPv4Interface(left), ipaddress.IPv4Interface(right)
        # Interface names are at most 15 characters and must be unique in the host namespace.
        left_name = left_name or f"ws{os.getpid()}x{next(_link_numbers)}"
        left_where = [] if left_ns is None else ["netns", left_ns.name]
        _run(["ip", "link", "add", left_name, *left_where, "type", "veth",
              "peer", "name", right_name, "netns", right_ns.name])
        if left_ns is None:
            self.host_links.append(left_name)
        for ns, name, addr in ((left_ns, left_name, left_if), (right_ns, right_name, right_if)):
            prefix = [] if ns is None else ["-n", ns.name]
            _run(["ip", *prefix, "addr", "add", str(addr), "dev", name])
            _run(["ip", *prefix, "link", "set", name, "up"])
        return Link(left_ns, left_name, left_if, right_ns, right_name, right_if)

    def close(self) -> None:
        """Kill every process in our namespaces, delete them and the host-side veth ends."""
        for ns in self.namespaces:
            for proc in ns.processes:
                _stop(proc)
            for pid in ns.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for ns in self.namespaces:
            _wait_empty(ns)
            _run(["ip", "netns", "del", ns.name], check=False)
        for name in self.host_links:
            # Usually gone with its peer's namespace; delete it in case a process kept that alive.
            _run(["ip", "link", "del", name], check=False)
        self.namespaces.clear()
        self.host_links.clear()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _wait_empty(ns: Namespace, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while ns.pids() and time.monotonic() < deadline:
        time.sleep(0.02)

