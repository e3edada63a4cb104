"""Every shipped playbook run for real through RunService and the real connectors, on its test device.

    block-address-nftables    the netns Linux firewall (sshd, nftables, sudo): packets really dropped
    linux-volatile-forensics  the same device as a Linux host
    switch-port-shutdown/-enable  Debian's snmpd in a netns, ports are veths: the link really goes down
    block-address-ios-acl     the IOS emulator over SSH (no IOS device can exist on this machine)
    capture-incident-traffic  a capture on `lo` while the test sends datagrams
    notify-webhook            a small HTTP server on 127.0.0.1 with a bearer token
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.firewall import LinuxFirewall, firewall_skip_reason, start_linux_firewall
from support.ios_emulator import IosEmulator
from support.runkit import APPROVERS, RunKit, secret_file, snmp_device_toml, ssh_device_toml
from support.snmpd import (
    SnmpSwitch,
    snmp_switch_fixture,  # noqa: F401
)

from watchstander.agent.store.runs import Run

pytestmark = pytest.mark.integration


def _phases(run: Run) -> list[tuple[str, str, str]]:
    return [(s.phase, s.step_id, s.status) for s in run.steps]


# ---------------------------------------------------------------------------- the Linux firewall


@pytest.fixture(scope="module")
def firewall_device() -> Iterator[LinuxFirewall]:
    """One netns firewall for this module; removed even when a test fails."""
    reason = firewall_skip_reason()
    if reason is not None:
        pytest.skip(f"Linux firewall device: {reason}")
    with start_linux_firewall("pbdev") as device:
        yield device


@pytest.fixture
def fw_kit(tmp_path: Path, firewall_device: LinuxFirewall) -> Iterator[tuple[RunKit, LinuxFirewall]]:
    """A RunKit whose inventory holds the firewall as fw1 (linux-firewall and linux-host), block set empty."""
    fw = firewall_device
    fw.nft("flush", "set", "inet", "watchstander", "block_v4")
    kit = RunKit(tmp_path / "agent", ssh_device_toml(
        "fw1", fw.mgmt_address, port=fw.ssh_port, user=fw.user, key_file=fw.client_key,
        known_hosts=fw.known_hosts, roles=["linux-firewall", "linux-host"]))
    try:
        yield kit, fw
    finally:
        kit.close()
        fw.nft("flush", "set", "inet", "watchstander", "block_v4")


@pytest.mark.privileged
def test_block_address_nftables_drops_the_attacker_and_revert_lets_it_pass(
        fw_kit: tuple[RunKit, LinuxFirewall]) -> None:
    kit, fw = fw_kit
    assert fw.reachable_from_attacker(), "the attacker's traffic must pass before the block"

    sid = kit.approved("block-address-nftables", {"address": fw.attacker_address, "minutes": 5})
    run = kit.run(sid)
    assert run.state == "succeeded", run.detail
    assert _phases(run) == [("pre_checks", "set-exists", "ok"), ("steps", "add-element", "ok"),
                            ("post_checks", "element-present", "ok")]
    assert [s.exit_status for s in run.steps] == [0, 0, 0]
    assert run.steps[1].command == (
        f"ssh fw1: sudo -n nft add element inet watchstander block_v4 '{{ {fw.attacker_address} timeout 5m }}'")
    assert fw.attacker_address in (run.steps[2].output or "")
    assert re.search(rf"elements = {{ {re.escape(fw.attacker_address)} timeout 5m expires ", fw.block_set())
    assert not fw.reachable_from_attacker(), "the firewall must drop the blocked address's packets"

    reverted = kit.revert(run.id)
    assert reverted.revert_state == "reverted", reverted.detail
    assert _phases(reverted)[-1] == ("revert", "delete-element", "ok")
    assert fw.attacker_address not in fw.block_set()
    assert fw.reachable_from_attacker(), "traffic must pass again after the revert"
    assert kit.app.audit.verify().ok


@pytest.mark.privileged
def test_linux_volatile_forensics_collects_from_the_host(fw_kit: tuple[RunKit, LinuxFirewall]) -> None:
    kit, fw = fw_kit
    sid = kit.approved("linux-volatile-forensics", {"host": "fw1"})
    run = kit.run(sid)
    steps = {s.step_id: s for s in run.steps}
    before_modules = ["clock", "uptime", "sockets", "processes", "users", "interfaces", "routes", "neighbours",
                      "recent-logins"]
    for step_id in before_modules:
        assert steps[step_id].status == "ok", (step_id, steps[step_id].detail)
        assert steps[step_id].exit_status == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s*", steps["clock"].output or "")
    assert re.match(r"\d+\.\d+ \d+\.\d+", steps["uptime"].output or "")
    assert f"{fw.mgmt_address}:{fw.ssh_port}" in (steps["sockets"].output or "")  # sshd, seen through sudo ss
    assert "sshd" in (steps["processes"].output or "")
    assert "mgmt0" in (steps["interfaces"].output or "") and "ext0" in (steps["interfaces"].output or "")
    assert "192.168.56.0/24" in (steps["routes"].output or "")

    # The namespace shares the host's kernel. A kernel built without module support (this CI VM's)
    # has no /proc/modules, so `cat /proc/modules` exits 1; the playbook puts it last, so every
    # other piece of evidence is collected first and the run ends `failed` only at that step.
    if Path("/proc/modules").exists():
        assert run.state == "succeeded", run.detail
        assert [s.step_id for s in run.steps] == [*before_modules, "modules"]
        assert all(s.status == "ok" for s in run.steps)
    else:
        assert run.state == "failed"
        assert run.failed_step == "modules"
        assert steps["modules"].status == "failed" and steps["modules"].exit_status == 1
        assert "/proc/modules" in (steps["modules"].output or "")
        assert run.detail == "step modules: exit status 1, expected 0"
    assert kit.app.audit.verify().ok


# ---------------------------------------------------------------------------- the SNMP switch


@pytest.mark.privileged
def test_switch_port_shutdown_then_enable_on_snmpd(tmp_path: Path, snmp_switch: SnmpSwitch) -> None:
    agent, user = snmp_switch.agent, snmp_switch.agent.user
    assert agent.port is not None
    creds = tmp_path / "credentials"
    kit = RunKit(tmp_path / "agent", snmp_device_toml(
        "sw1", agent.address, port=agent.port, user=user.name,
        auth_key_file=secret_file(creds / "sw1-auth", user.auth_key),
        priv_key_file=secret_file(creds / "sw1-priv", user.priv_key), roles=["switch"]))
    try:
        index = snmp_switch.if_index
        assert snmp_switch.admin_up()

        # High risk: one approval leaves it pending; RunKit.approve's second person completes it.
        sid = kit.propose("switch-port-shutdown", {"switch": "sw1", "if_index": index})
        queue = kit.app.review_queue()
        assert queue.approve(sid, APPROVERS[0], "ok").state == "pending"
        assert queue.approve(sid, APPROVERS[1], "ok").state == "approved"
        down = kit.run(sid)
        assert down.state == "succeeded", down.detail
        assert _phases(down) == [("pre_checks", "read-port", "ok"), ("steps", "set-down", "ok"),
                                 ("post_checks", "settle", "ok"), ("post_checks", "is-down", "ok")]
        assert snmp_switch.port_name in (down.steps[0].output or "")  # ifDescr names the port
        assert down.steps[3].value == "2"
        assert not snmp_switch.admin_up(), "the port's link must really be down"

        up = kit.run(kit.approved("switch-port-enable", {"switch": "sw1", "if_index": index}))
        assert up.state == "succeeded", up.detail
        assert _phases(up)[-1] == ("post_checks", "is-up", "ok")
        assert up.steps[-1].value == "1"
        assert snmp_switch.admin_up(), "the port's link must be up again"
        assert kit.app.audit.verify().ok
    finally:
        kit.close()


# ---------------------------------------------------------------------------- the IOS emulator


def test_block_address_ios_acl_exact_session_and_revert(
        router_kit: Callable[..., tuple[RunKit, IosEmulator]]) -> None:
    kit, emulator = router_kit()
    sid = kit.approved("block-address-ios-acl", {"address": "203.0.113.7", "sequence": 100, "minutes": 30})
    run = kit.run(sid)
    assert run.state == "succeeded", run.detail
    assert run.revert_due_at is not None  # IOS has no timer: the agent keeps one
    assert emulator.sessions == [
        ["show ip access-lists WATCHSTANDER-BLOCK"],
        ["terminal length 0", "enable", "configure terminal", "ip access-list extended WATCHSTANDER-BLOCK",
         "100 deny ip host 203.0.113.7 any log", "end", "exit"],
        ["show ip access-lists WATCHSTANDER-BLOCK"],
    ]
    assert emulator.acl("WATCHSTANDER-BLOCK") == ["100 deny ip host 203.0.113.7 any log", "10000 permit ip any any"]

    reverted = kit.revert(run.id)
    assert reverted.revert_state == "reverted", reverted.detail
    assert emulator.sessions[-1] == ["terminal length 0", "enable", "configure terminal",
                                     "ip access-list extended WATCHSTANDER-BLOCK", "no 100", "end", "exit"]
    assert emulator.acl("WATCHSTANDER-BLOCK") == ["10000 permit ip any any"]
    assert not any("copy running-config startup-config" in line for s in emulator.sessions for line in s)
    assert kit.app.audit.verify().ok


# ---------------------------------------------------------------------------- a capture on lo


def _capture_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "capturing packets needs root (CAP_NET_RAW)"
    return None


# Not 127.0.0.1: every loopback test on the machine talks to that address, and a capture of it
# would hold thousands of their packets. The whole of 127.0.0.0/8 is on `lo`; this one is ours.
CAPTURED = "127.83.0.1"


# connectors/capture.py passes timeout= to scapy's AsyncSniffer, which scapy 2.8 refuses with a
# ValueError, so every capture step errors at once. Fix (reported to the lead): build the sniffer
# without timeout= and end it from the wait loop at time.monotonic() + duration_s. Strict: once
# the fix is in, this marker must go.
@pytest.mark.privileged
@pytest.mark.slow
def test_capture_incident_traffic_on_lo_writes_the_evidence(tmp_path: Path) -> None:
    reason = _capture_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    from scapy.layers.inet import IP, UDP
    from scapy.utils import rdpcap

    marker = f"watchstander-capture-{os.getpid()}-".encode()
    stop = threading.Event()
    sent: list[int] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as source:
        sink.bind((CAPTURED, 0))
        port = sink.getsockname()[1]

        def send() -> None:
            # Until the run returns: the sniffer starts a moment after the run does.
            n = 0
            while not stop.wait(0.25) and n < 200:
                source.sendto(marker + str(n).encode(), (CAPTURED, port))
                sent.append(n)
                n += 1

        kit = RunKit(tmp_path / "agent")
        sender = threading.Thread(target=send, name="capture-test-sender")
        try:
            sid = kit.approved("capture-incident-traffic",
                               {"addresses": [CAPTURED], "interface": "lo", "duration_s": 10})
            sender.start()
            run = kit.run(sid)
        finally:
            stop.set()
            if sender.is_alive():
                sender.join(5)
            kit.close()

    assert run.state == "succeeded", run.detail
    step = run.steps[0]
    assert step.command == f"capture on lo: hosts {CAPTURED} for 10 s, at most 200000 packets, snaplen 65535"
    assert step.output and step.output.endswith("stopped by duration")
    assert len(step.artifacts) == 1
    name, _, digest = step.artifacts[0].partition("#sha256=")
    pcap = Path(name)
    assert pcap.parent == tmp_path / "agent" / "captures"
    assert pcap.name.startswith(f"run-{run.id}-capture-lo-") and pcap.suffix == ".pcap"
    assert stat.S_IMODE(pcap.stat().st_mode) == 0o600
    assert hashlib.sha256(pcap.read_bytes()).hexdigest() == digest
    assert f"(sha256 {digest})" in step.output

    packets = rdpcap(str(pcap))
    assert step.value == str(len(packets))
    assert all(CAPTURED in (p[IP].src, p[IP].dst) for p in packets)  # the capture kept only the incident's
    ours = {bytes(p[UDP].payload) for p in packets if p.haslayer(UDP) and p[UDP].dport == port}
    assert all(payload.startswith(marker) for payload in ours)
    # Most of what was sent while the sniffer ran (10 s at 4 per second) is in the file.
    assert len(ours) >= 20, f"{len(ours)} of {len(sent)} datagrams captured"


# ---------------------------------------------------------------------------- a webhook


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads `received`."""


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    """A threaded HTTP server on 127.0.0.1 that records every POST; (url, received)."""
    received: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="webhook-test-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/soc", received
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def test_notify_webhook_posts_with_the_token_and_never_stores_it(
        tmp_path: Path, webhook_server: tuple[str, list[tuple[str, dict[str, str], bytes]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    url, received = webhook_server
    token = "wstoken-" + secrets.token_urlsafe(24)
    token_file = secret_file(tmp_path / "secrets" / "soc-token", token)
    kit = RunKit(tmp_path / "agent", extra_toml=f'[notify.webhooks.soc]\nurl = "{url}"\ntoken_file = "{token_file}"\n')
    try:
        run = kit.run(kit.approved("notify-webhook", {"incident": "INC-42", "severity": "critical"}))
        assert run.state == "succeeded", run.detail
        assert kit.app.audit.verify().ok
    finally:
        kit.close()

    assert len(received) == 1
    path, headers, body = received[0]
    assert path == "/hooks/soc"
    assert headers["Authorization"] == f"Bearer {token}"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "type": "watchstander.notify", "title": "Watchstander incident INC-42",
        "message": "Incident INC-42 needs attention from the watch (critical).", "severity": "critical",
        "fields": {"incident": "INC-42"}}
    assert run.steps[0].output == f"{url} answered HTTP 204"
    assert token not in json.dumps(run.as_dict())
    # The whole store -- runs, steps and the audit log -- holds no trace of the token.
    for db in (tmp_path / "agent").glob("w.db*"):
        assert token.encode() not in db.read_bytes(), db
