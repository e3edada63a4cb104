"""Kernel drops of UDP sources: the SNMP trap receiver counts what the kernel dropped, as syslog does.

The loop is kept busy while more datagrams arrive than the receive buffer holds: every datagram
sent is then received (counted in `datagrams`) or dropped by the kernel (counted in `kernel_drops`).
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime

import pytest
from support.syslog_intake import until

from watchstander.agent.daemon.snmp_traps import SnmpTrapSource
from watchstander.agent.daemon.sources import Sink
from watchstander.agent.daemon.udp_drops import local_address, proc_udp_drops, proc_udp_drops_at

pytestmark = pytest.mark.integration


def test_local_address_is_written_as_proc_net_udp_writes_it() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert proc_udp_drops_at("127.0.0.1", port) == 0
        assert proc_udp_drops(os.fstat(s.fileno()).st_ino) == 0
    assert local_address("127.0.0.1", 0x1F90).endswith(":1F90")
    assert proc_udp_drops_at("127.0.0.1", port) is None  # closed


def test_a_flood_on_the_trap_port_is_received_or_counted_as_kernel_drops() -> None:
    source = SnmpTrapSource("127.0.0.1:0", lambda: datetime.now(UTC), communities=["public"], users=[])
    sent = 20_000

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await source.start(Sink(loop, lambda events: None))
        try:
            assert source.bound is not None
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                for _ in range(sent):  # the loop cannot read meanwhile: the 1 MiB buffer overflows
                    tx.sendto(b"\x30\x03\x02\x01", source.bound)
            await until(lambda: source.counters["datagrams"] + source.counters["kernel_drops"] >= sent, 30)
        finally:
            await source.stop()

    asyncio.run(main())
    c = source.counters
    assert c["kernel_drops"] > 0
    assert c["datagrams"] + c["kernel_drops"] == sent
