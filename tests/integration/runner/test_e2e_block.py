"""Issue 8's "Done when", end to end through the command line, against the netns Linux firewall.

    replay ../shared/telemetry/pcaps/sshguess.pcap   -> a pending block suggestion for 192.168.56.1
    suggestions show ID                              -> the exact nft command that will run
    suggestions approve ID                           -> approved by this uid (the requester is triage)
    runs start ID                                    -> the element is in the firewall's set, the
                                                        post-check confirmed it, the attacker is dropped
    audit verify                                     -> the chain holds
    runs revert RUN                                  -> the element is gone, traffic passes again

The inventory's only linux-firewall is the test device, so the guard fills the playbook's
`firewall` input by itself; nothing in the test names it to the pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.firewall import ATTACKER_ADDRESS, LinuxFirewall, firewall_skip_reason, start_linux_firewall

from watchstander.agent.cli.main import main

pytestmark = [pytest.mark.integration, pytest.mark.privileged, pytest.mark.shared]

PLAYBOOK = "block-address-nftables"


@pytest.fixture
def sshguess(shared_telemetry: Path) -> Path:
    """The SSH password-guessing capture from ../shared, or skip."""
    path = shared_telemetry / "pcaps" / "sshguess.pcap"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the end-to-end test replays it")
    return path


@pytest.fixture
def firewall() -> Iterator[LinuxFirewall]:
    """The netns Linux firewall (sshd, nftables, sudo), removed even when the test fails."""
    reason = firewall_skip_reason()
    if reason is not None:
        pytest.skip(f"Linux firewall device: {reason}")
    with start_linux_firewall("e2e") as device:
        yield device


def _config(tmp_path: Path, fw: LinuxFirewall) -> Path:
    path = tmp_path / "watchstander.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n'
        # No daemon: every command runs in-process as this uid (a socket nobody listens on).
        f'[control]\nsocket = "{tmp_path / "control.sock"}"\n'
        f'[runner]\ncapture_dir = "{tmp_path / "captures"}"\ncredentials_dir = "{tmp_path / "credentials"}"\n\n'
        f'[[devices]]\nname = "fw1"\naddress = "{fw.mgmt_address}"\nport = {fw.ssh_port}\nplatform = "linux"\n'
        f'roles = ["linux-firewall", "linux-host"]\n'
        f'[devices.ssh]\nuser = "{fw.user}"\nkey_file = "{fw.client_key}"\nknown_hosts = "{fw.known_hosts}"\n'
        f'connect_timeout_s = 5\n',
        encoding="utf-8")
    return path


def _cli(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str]:
    """Run `watchstander ARGV --config CONFIG` in-process; (exit status, stdout). stderr goes to the report."""
    capsys.readouterr()
    status = main([*argv, "--config", str(config)])
    out, err = capsys.readouterr()
    if status != 0:
        print(f"watchstander {' '.join(argv)} exited {status}:\n{out}\n{err}")
    return status, out


def _json(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> Any:
    status, out = _cli(capsys, config, *argv, "--format", "json")
    assert status == 0, argv
    return json.loads(out)


def test_replay_to_block_end_to_end(tmp_path: Path, sshguess: Path, firewall: LinuxFirewall,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    fw = firewall
    config = _config(tmp_path, fw)
    assert fw.reachable_from_attacker(), "traffic from the attacker must pass before the block"

    status, out = _cli(capsys, config, "playbooks", "approve", PLAYBOOK)
    assert status == 0 and out.startswith(f"approved {PLAYBOOK} v1 sha256 ")

    status, out = _cli(capsys, config, "replay", "--no-progress", str(sshguess))
    assert status == 0
    assert "1 suggestion(s) await review" in out

    found = [s for s in _json(capsys, config, "suggestions", "list")["suggestions"]
             if s["playbook_id"] == PLAYBOOK and s["parameters"].get("address") == ATTACKER_ADDRESS]
    assert len(found) == 1, found
    suggestion = found[0]
    assert suggestion["state"] == "pending"
    assert suggestion["requester"] == "watchstander:triage"
    assert suggestion["parameters"] == {"address": ATTACKER_ADDRESS, "firewall": "fw1", "minutes": 60}
    sid = str(suggestion["id"])

    status, out = _cli(capsys, config, "suggestions", "show", sid)
    assert status == 0
    assert (f"steps       add-element: ssh fw1: sudo -n nft add element inet watchstander block_v4 "
            f"'{{ {ATTACKER_ADDRESS} timeout 60m }}'") in out

    # Without --local: `--local` is read-only by design (approve exits 77 with it); with no daemon
    # answering, the approval runs in-process as this uid, who is not the requester.
    status, out = _cli(capsys, config, "suggestions", "approve", sid)
    assert status == 0
    assert out.startswith(f"suggestion #{sid} approved (1/1)")

    status, out = _cli(capsys, config, "runs", "start", sid)
    assert status == 0
    assert f"{PLAYBOOK} for suggestion #{sid} [succeeded]" in out.splitlines()[0]

    assert f"elements = {{ {ATTACKER_ADDRESS} timeout 1h expires " in fw.block_set()
    runs = _json(capsys, config, "runs", "list")["runs"]
    assert len(runs) == 1
    run = _json(capsys, config, "runs", "show", str(runs[0]["id"]))
    assert run["state"] == "succeeded"
    assert [(s["phase"], s["step_id"], s["status"]) for s in run["steps"]] == [
        ("pre_checks", "set-exists", "ok"), ("steps", "add-element", "ok"), ("post_checks", "element-present", "ok")]
    post = run["steps"][2]
    assert post["exit_status"] == 0 and ATTACKER_ADDRESS in post["output"]
    assert not fw.reachable_from_attacker(), "the firewall must drop packets from the blocked address"

    status, out = _cli(capsys, config, "audit", "verify")
    assert status == 0, out

    status, out = _cli(capsys, config, "runs", "revert", str(run["id"]))
    assert status == 0
    assert "revert:   reverted" in out
    assert ATTACKER_ADDRESS not in fw.block_set()
    assert fw.reachable_from_attacker(), "traffic must pass again after the revert"
    status, out = _cli(capsys, config, "audit", "verify")
    assert status == 0, out
