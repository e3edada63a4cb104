"""Real Linux devices in network namespaces: a firewall (sshd, nftables, sudo) that is also a Linux host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.firewall import LinuxFirewall, LinuxHost, firewall_skip_reason, start_linux_firewall


@pytest.fixture(scope="module")
def firewall_device() -> Iterator[LinuxFirewall]:
    """One firewall per test module (setup takes about 0.2 s); removed even when tests fail."""
    reason = firewall_skip_reason()
    if reason is not None:
        pytest.skip(f"Linux firewall device: {reason}")
    with start_linux_firewall() as device:
        yield device


@pytest.fixture
def linux_firewall(firewall_device: LinuxFirewall) -> Iterator[LinuxFirewall]:
    """The module's firewall with an empty block set before and after the test."""
    firewall_device.nft("flush", "set", "inet", "watchstander", "block_v4")
    yield firewall_device
    firewall_device.nft("flush", "set", "inet", "watchstander", "block_v4")


@pytest.fixture
def linux_host(firewall_device: LinuxFirewall) -> LinuxHost:
    """A Linux host reachable over SSH (role linux-host): the firewall is one."""
    return firewall_device
