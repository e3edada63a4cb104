"""`playbooks dry-run` and `suggestions show`: every shipped playbook rendered, nothing contacted.

The inventory names one device per role the library uses, all on TEST-NET-1 addresses
(192.0.2.0/24, never routed) with key and credential files that do not exist: rendering must
need neither the network nor a secret. A tripwire on the socket module fails the test if any
code path tries to connect or send anyway.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.runkit import RunKit, ssh_device_toml

import watchstander.playbooks
from watchstander.agent.cli.main import main

pytestmark = pytest.mark.integration

LIBRARY = Path(watchstander.playbooks.__file__).parent / "library"

NFT_BLOCK = [
    ("pre_checks", "set-exists", "ssh fw1: sudo -n nft list set inet watchstander block_v4"),
    ("steps", "add-element",
     "ssh fw1: sudo -n nft add element inet watchstander block_v4 '{ 192.168.56.1 timeout 60m }'"),
    ("post_checks", "element-present", "ssh fw1: sudo -n nft get element inet watchstander block_v4 '{ 192.168.56.1 }'"),
    ("rollback", "delete-element", "ssh fw1: sudo -n nft delete element inet watchstander block_v4 '{ 192.168.56.1 }'"),
]

# playbook id -> (--param values, every rendered step as (section, step id, command), revert_after_s)
CASES: dict[str, tuple[list[str], list[tuple[str, str, str]], int | None]] = {
    "block-address-nftables": (["address=192.168.56.1", "firewall=fw1"], NFT_BLOCK, None),
    "block-address-ios-acl": (["address=203.0.113.7", "sequence=100", "router=edge1", "minutes=30"], [
        ("pre_checks", "acl-exists", "ssh edge1: show ip access-lists WATCHSTANDER-BLOCK"),
        ("steps", "add-deny", ("ssh edge1 (configure terminal): ip access-list extended WATCHSTANDER-BLOCK | "
                               "100 deny ip host 203.0.113.7 any log | end")),
        ("post_checks", "deny-present", "ssh edge1: show ip access-lists WATCHSTANDER-BLOCK"),
        ("rollback", "remove-deny", ("ssh edge1 (configure terminal): ip access-list extended WATCHSTANDER-BLOCK | "
                                     "no 100 | end")),
    ], 30 * 60),
    "switch-port-shutdown": (["switch=sw1", "if_index=3"], [
        ("pre_checks", "read-port", "snmp get sw1: 1.3.6.1.2.1.2.2.1.2.3 1.3.6.1.2.1.2.2.1.7.3"),
        ("steps", "set-down", "snmp set sw1: 1.3.6.1.2.1.2.2.1.7.3 integer 2"),
        ("post_checks", "settle", "wait 2 s"),
        ("post_checks", "is-down", "snmp get sw1: 1.3.6.1.2.1.2.2.1.7.3"),
        ("rollback", "set-up", "snmp set sw1: 1.3.6.1.2.1.2.2.1.7.3 integer 1"),
    ], None),
    "switch-port-enable": (["switch=sw1", "if_index=3"], [
        ("pre_checks", "read-port", "snmp get sw1: 1.3.6.1.2.1.2.2.1.2.3 1.3.6.1.2.1.2.2.1.7.3"),
        ("steps", "set-up", "snmp set sw1: 1.3.6.1.2.1.2.2.1.7.3 integer 1"),
        ("post_checks", "settle", "wait 2 s"),
        ("post_checks", "is-up", "snmp get sw1: 1.3.6.1.2.1.2.2.1.7.3"),
        ("rollback", "set-down", "snmp set sw1: 1.3.6.1.2.1.2.2.1.7.3 integer 2"),
    ], None),
    "capture-incident-traffic": (["addresses=192.168.56.1,2001:db8::7", "interface=eth1", "duration_s=30"], [
        ("steps", "capture",
         "capture on eth1: hosts 192.168.56.1,2001:db8::7 for 30 s, at most 200000 packets, snaplen 65535"),
    ], None),
    "notify-webhook": (["incident=42", "severity=critical"], [
        ("steps", "post", "notify webhook soc [critical]: Watchstander incident 42"),
    ], None),
    "linux-volatile-forensics": (["host=fw1"], [
        ("steps", "clock", "ssh fw1: date -u +%Y-%m-%dT%H:%M:%SZ"),
        ("steps", "uptime", "ssh fw1: cat /proc/uptime"),
        ("steps", "sockets", "ssh fw1: sudo -n ss -tuapn"),
        ("steps", "processes", "ssh fw1: ps -eo pid,ppid,user,lstart,stat,args --no-headers"),
        ("steps", "users", "ssh fw1: who -a"),
        ("steps", "interfaces", "ssh fw1: ip -details address show"),
        ("steps", "routes", "ssh fw1: ip route show table all"),
        ("steps", "neighbours", "ssh fw1: ip neigh show"),
        ("steps", "recent-logins", "ssh fw1: last -F -n 200"),
        ("steps", "modules", "ssh fw1: cat /proc/modules"),
    ], None),
}


def _ssh(name: str, address: str, platform: str, roles: list[str], missing: Path) -> str:
    return (f'[[devices]]\nname = "{name}"\naddress = "{address}"\nport = 22\nplatform = "{platform}"\n'
            f'roles = {json.dumps(roles)}\n[devices.ssh]\nuser = "watchstander"\n'
            f'key_file = "{missing / "id_ed25519"}"\nknown_hosts = "{missing / "known_hosts"}"\n\n')


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose inventory has a device for every role in the library, none reachable, no secret present."""
    missing = tmp_path / "does-not-exist"
    path = tmp_path / "watchstander.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n'
        f'[control]\nsocket = "{tmp_path / "control.sock"}"\n'
        f'[runner]\ncapture_dir = "{tmp_path / "captures"}"\ncredentials_dir = "{missing}"\n'
        f'[notify.webhooks.soc]\nurl = "http://192.0.2.40:8080/hook"\ntoken_file = "{missing / "soc-token"}"\n\n'
        + _ssh("fw1", "192.0.2.10", "linux", ["linux-firewall", "linux-host"], missing)
        + _ssh("edge1", "192.0.2.20", "cisco-ios", ["cisco-router"], missing)
        + f'[[devices]]\nname = "sw1"\naddress = "192.0.2.30"\nplatform = "linux"\nroles = ["switch"]\n'
          f'[devices.snmp]\nuser = "watchstander"\nauth_protocol = "SHA-256"\npriv_protocol = "AES-128"\n'
          f'auth_key_file = "{missing / "auth"}"\npriv_key_file = "{missing / "priv"}"\n',
        encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail on any attempt to connect or send from this process (a dry run contacts nothing)."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, *args: Any) -> Any:
        attempts.append(args)
        raise AssertionError(f"a dry run tried to reach the network: {args!r}")

    for name in ("connect", "connect_ex", "sendto", "sendmsg"):
        monkeypatch.setattr(socket.socket, name, refuse)
    yield attempts
    assert attempts == []


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the real command line in-process; (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_every_shipped_playbook_has_a_dry_run_case() -> None:
    shipped = {p.stem for p in LIBRARY.glob("*.yaml")}
    assert shipped and shipped == set(CASES)


@pytest.mark.parametrize("playbook_id", sorted(CASES))
def test_dry_run_json_renders_every_step_exactly(playbook_id: str, config: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    params, expected, revert_s = CASES[playbook_id]
    status, out, err = cli(capsys, "playbooks", "dry-run", playbook_id, *(f"--param={p}" for p in params),
                           "--format", "json", "--config", str(config))
    assert status == 0, err
    data = json.loads(out)
    assert data["playbook"] == playbook_id
    assert [(s["section"], s["step"], s["command"]) for s in data["steps"]] == expected
    assert data["revert_after_s"] == revert_s
    assert len(data["content_hash"]) == 64


@pytest.mark.parametrize("playbook_id", sorted(CASES))
def test_dry_run_text_shows_every_command(playbook_id: str, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params, expected, revert_s = CASES[playbook_id]
    status, out, err = cli(capsys, "playbooks", "dry-run", playbook_id, *(f"--param={p}" for p in params),
                           "--config", str(config))
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"dry run of {playbook_id} v1 (sha256 ") and lines[0].endswith("nothing is contacted")
    step_lines = [line for line in lines if any(line.lstrip().startswith(s) for s in
                                                ("pre_checks ", "steps ", "post_checks ", "rollback "))]
    assert len(step_lines) == len(expected)
    for line, (section, step, command) in zip(step_lines, expected):
        assert line.split()[0] == section
        assert f" {step} [" in line and line.endswith(f"]: {command}")
    assert ("the rollback runs by itself 30 minute(s) after a successful run" in out) == (revert_s is not None)


def test_the_only_linux_firewall_is_filled_in_and_minutes_render(config: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "playbooks", "dry-run", "block-address-nftables", "--param", "address=10.9.8.7",
                           "--param", "minutes=90", "--format", "json", "--config", str(config))
    assert status == 0, err
    data = json.loads(out)
    assert data["parameters"] == {"address": "10.9.8.7", "firewall": "fw1", "minutes": 90}
    assert data["steps"][1]["command"] == (
        "ssh fw1: sudo -n nft add element inet watchstander block_v4 '{ 10.9.8.7 timeout 90m }'")
    assert data["steps"][1]["expect"] == {"exit_status": 0}
    assert data["steps"][2]["expect"] == {"exit_status": 0, "output_contains": "10.9.8.7"}


@pytest.mark.parametrize(("playbook_id", "params", "named"), [
    ("block-address-nftables", ["address=999.1.1.1"], "bad_parameter:address"),
    ("block-address-nftables", ["address=192.168.56.1", "minutes=1"], "bad_parameter:minutes"),
    ("block-address-nftables", ["address=192.168.56.1", "minutes=soon"], "bad_parameter:minutes"),
    ("block-address-nftables", [], "missing_parameter:address"),
    ("block-address-nftables", ["address=192.168.56.1", "rule=accept"], "unknown_parameter ('rule' is not an input"),
    ("block-address-ios-acl", ["address=203.0.113.7", "sequence=10000"], "bad_parameter:sequence"),
    ("block-address-ios-acl", ["address=203.0.113.7"], "missing_parameter:sequence"),
    ("switch-port-shutdown", ["if_index=0"], "bad_parameter:if_index"),
    ("capture-incident-traffic", ["addresses=192.168.56.1", "interface=eth0;reboot"], "bad_parameter:interface"),
    ("capture-incident-traffic", ["addresses=192.168.56.1", "interface=eth0", "duration_s=601"],
     "bad_parameter:duration_s"),
    ("notify-webhook", ["incident=42", "severity=panic"], "bad_parameter:severity"),
])
def test_bad_parameters_exit_4_naming_the_input(playbook_id: str, params: list[str], named: str, config: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "playbooks", "dry-run", playbook_id, *(f"--param={p}" for p in params),
                           "--format", "json", "--config", str(config))
    assert status == 4
    assert out == ""
    assert f"{playbook_id}: parameters refused: {named}" in err


@pytest.mark.parametrize(("playbook_id", "params", "named", "why"), [
    ("block-address-nftables", ["address=192.168.56.1", "firewall=fw9"], "firewall",
     "no device 'fw9' in the inventory"),
    ("block-address-nftables", ["address=192.168.56.1", "firewall=edge1"], "firewall",
     "device 'edge1' does not have role 'linux-firewall'"),
    ("block-address-ios-acl", ["address=203.0.113.7", "sequence=100", "router=fw1"], "router",
     "device 'fw1' does not have role 'cisco-router'"),
    ("switch-port-shutdown", ["switch=edge1", "if_index=3"], "switch",
     "device 'edge1' does not have role 'switch'"),
    ("linux-volatile-forensics", ["host=sw1"], "host", "device 'sw1' does not have role 'linux-host'"),
])
def test_a_device_outside_the_inventory_or_without_the_role_is_refused(
        playbook_id: str, params: list[str], named: str, why: str, config: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "playbooks", "dry-run", playbook_id, *(f"--param={p}" for p in params),
                           "--config", str(config))
    assert status == 4
    assert out == ""
    assert f"bad_parameter:{named} ({why})" in err


def test_suggestions_show_prints_the_commands_that_will_run(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "does-not-exist"
    kit = RunKit(tmp_path / "kit",
                 ssh_device_toml("fw1", "192.0.2.10", port=22, user="watchstander", key_file=missing / "key",
                                 known_hosts=missing / "known_hosts", roles=["linux-firewall", "linux-host"]),
                 f'[control]\nsocket = "{tmp_path / "control.sock"}"\n')
    try:
        sid = kit.propose("block-address-nftables", {"address": "192.168.56.1"})
    finally:
        kit.close()

    status, out, err = cli(capsys, "suggestions", "show", str(sid), "--local", "--config", str(kit.config_path))
    assert status == 0, err
    assert "[pending]" in out.splitlines()[0]
    will_run = out[out.index("will run (exactly these commands"):].splitlines()[1:]
    assert [line.split(None, 2) for line in will_run] == [[section, f"{step}:", command]
                                                          for section, step, command in NFT_BLOCK]

    status, out, err = cli(capsys, "suggestions", "show", str(sid), "--local", "--format", "json",
                           "--config", str(kit.config_path))
    assert status == 0, err
    data = json.loads(out)
    assert data["parameters"] == {"address": "192.168.56.1", "firewall": "fw1", "minutes": 60}
    assert [(s["section"], s["step"], s["command"]) for s in data["will_run"]] == NFT_BLOCK
    assert data["will_run_error"] is None
