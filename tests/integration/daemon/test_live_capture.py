"""Live capture: the daemon's capture source on a veth pair between two test namespaces.

The daemon runs in a child process inside the receiving namespace (a packet socket belongs to the
namespace of the process that opens it); a raw-frame sender in the other namespace sends a port
scan's SYNs. Every frame sent is either received or counted as a kernel drop, and the port-scan
detector's incident reaches the store.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.netns import Lab, netns_skip_reason
from support.packet_blaster import syn_frame

from watchstander.agent.config.load import validate_config
from watchstander.agent.errors import ConfigError
from watchstander.agent.store.incidents import IncidentStore
from watchstander.agent.store.schema import open_store
from watchstander.connectors.events import SYN
from watchstander.connectors.live import (
    BPF_RET_K,
    BpfError,
    BpfProgram,
    CaptureError,
    CaptureOptions,
    LiveCapture,
    accept_all,
    compile_bpf,
)
from watchstander.connectors.packets import LINK_ETHERNET, PacketDecoder
from watchstander.connectors.skips import SkipCounter

pytestmark = pytest.mark.integration

BLASTER = Path(__file__).resolve().parents[2] / "support" / "packet_blaster.py"
SCAN_PORTS = 200


def _libpcap_reason() -> str | None:
    try:
        compile_bpf("tcp")
    except BpfError as exc:
        return f"BPF filters need libpcap (Debian package libpcap0.8): {exc}"
    return None


DAEMON_IN_NAMESPACE = textwrap.dedent("""
    import asyncio, json, sys
    from watchstander.agent.app.wiring import App
    from watchstander.agent.clock import system_clock
    from watchstander.agent.config.load import validate_config
    from watchstander.agent.daemon.capture import capture_sources
    from watchstander.agent.daemon.daemon import Daemon
    from watchstander.agent.store.schema import open_store

    cfg = validate_config(json.loads(sys.argv[1]))

    async def main() -> None:
        daemon = Daemon(App(cfg, open_store(cfg.store.resolved_url()), system_clock),
                        source_kinds={"capture.live": capture_sources})
        await daemon.start()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        last = None
        while last != (now := [s.counters["frames"] for s in daemon.sources]):  # drained
            last = now
            await asyncio.sleep(0.5)
        await daemon.stop()
        print(json.dumps({s.name: dict(s.counters) for s in daemon.sources}), flush=True)

    asyncio.run(main())
""")


@pytest.mark.privileged
def test_capture_sources_see_a_port_scan_and_account_for_every_frame(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    reason = netns_skip_reason() or _libpcap_reason()
    if reason:
        pytest.skip(reason)
    methods = ("ring", "recv")
    with Lab("cap") as lab:
        scanner, sensor = lab.namespace("scan"), lab.namespace("sense")
        # One daemon, two interfaces: the ring on sense0, plain recv on sense1 (a daemon start is slow).
        links = [lab.veth(scanner, sensor, left_name=f"scan{i}", right_name=f"sense{i}") for i in range(2)]
        db = tmp_path / "w.db"
        config = {
            "store": {"url": f"sqlite:///{db}"},
            "sources": {"syslog_udp": [], "flush_s": 0.2, "capture": [
                # The filter keeps the sensor's own RSTs and the ARP exchange out of the count.
                {"interface": f"sense{i}", "bpf": f"tcp and src host {link.left.ip}", "method": method, "ring_mb": 4}
                for i, (link, method) in enumerate(zip(links, methods, strict=True))]},
        }
        daemon = sensor.popen([sys.executable, "-c", DAEMON_IN_NAMESPACE, json.dumps(config)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert daemon.stdin is not None and daemon.stdout is not None and daemon.stderr is not None
        ready = daemon.stdout.readline()
        assert ready == b"ready\n", daemon.stderr.read().decode(errors="replace")[-2000:]
        for i, link in enumerate(links):
            mac = sensor.run(["cat", f"/sys/class/net/sense{i}/address"]).stdout.strip()
            sent = json.loads(scanner.run([sys.executable, str(BLASTER), f"scan{i}", "--dst-mac", mac,
                                           "--src", str(link.left.ip), "--dst", str(link.right.ip),
                                           "--ports", f"1-{SCAN_PORTS}", "--count", str(SCAN_PORTS)]).stdout)
            assert sent["sent"] == SCAN_PORTS
        daemon.stdin.write(b"stop\n")
        daemon.stdin.flush()
        out, err = daemon.communicate(timeout=60)
        assert daemon.returncode == 0, err.decode(errors="replace")[-2000:]
        by_source = json.loads(out)

    for i, method in enumerate(methods):
        counters = by_source[f"capture:sense{i}"]
        assert counters["kernel_packets"] == SCAN_PORTS, (method, counters)
        assert counters["frames"] + counters["kernel_drops"] == SCAN_PORTS, (method, counters)
        assert counters["events"] == counters["frames"], (method, counters)
        assert counters["frames"] >= 30, (method, counters)  # the detector's threshold, however loaded
    store = open_store(f"sqlite:///{db}")
    try:
        incidents = IncidentStore(store, clock).list()
    finally:
        store.close()
    for link in links:
        scans = [i for i in incidents
                 if "portscan" in i.detectors and str(link.left.ip) in i.entities().get("attacker", [])]
        assert scans, [(i.title, i.detectors) for i in incidents]
        assert str(link.right.ip) in scans[0].entities().get("victim", [])


def test_without_cap_net_raw_the_error_names_the_capability() -> None:
    argv = [sys.executable, "-c", textwrap.dedent("""
        from watchstander.connectors.live import CaptureOptions, CapabilityMissing, LiveCapture
        try:
            LiveCapture(CaptureOptions("lo"))
        except CapabilityMissing as exc:
            print(exc)
    """)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to drop CAP_NET_RAW as root")
        argv = ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw", *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "CAP_NET_RAW" in out and "lo" in out


def test_a_bad_filter_is_a_config_error_naming_the_interface() -> None:
    reason = _libpcap_reason()
    if reason:
        pytest.skip(reason)
    with pytest.raises(ConfigError) as info:
        validate_config({"sources": {"capture": [{"interface": "eth7", "bpf": "tcp and port banana"}]}})
    ((key, message),) = info.value.problems
    assert key.startswith("sources.capture") and "eth7" in message and "invalid BPF filter" in message
    with pytest.raises(BpfError, match="invalid BPF filter"):
        compile_bpf("ip host")


def test_an_unknown_interface_is_an_error_naming_it() -> None:
    with pytest.raises(CaptureError, match="capture on nosuch0: no such network interface"):
        LiveCapture(CaptureOptions("nosuch0"))


def test_snaplen_caps_every_accepting_return() -> None:
    program = BpfProgram(((0x28, 0, 0, 12), (0x15, 0, 1, 0x800), (BPF_RET_K, 0, 0, 262144), (BPF_RET_K, 0, 0, 0)))
    capped = program.capped(96)
    assert capped.instructions[2] == (BPF_RET_K, 0, 0, 96)
    assert capped.instructions[3] == (BPF_RET_K, 0, 0, 0)  # a drop stays a drop
    assert accept_all(128).instructions == ((BPF_RET_K, 0, 0, 128),)
    assert len(capped.packed()) == 8 * 4


def test_blaster_frames_decode_as_syns() -> None:
    frame = syn_frame(b"\x02" * 6, b"\x04" * 6, "10.200.0.1", "10.200.0.2", 40000, 22)
    (ev,) = PacketDecoder("t", SkipCounter(logging.getLogger("t"), "t")).decode(frame, LINK_ETHERNET, 1.8e9)
    assert (ev.src, ev.dst, ev.dport, ev.flags & SYN) == ("10.200.0.1", "10.200.0.2", 22, SYN)


def test_link_types_match_the_decoder() -> None:
    from watchstander.connectors import live, packets

    assert (live.LINK_ETHERNET, live.LINK_RAW) == (packets.LINK_ETHERNET, packets.LINK_RAW)
