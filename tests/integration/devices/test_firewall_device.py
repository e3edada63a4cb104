"""The namespace firewall behaves like a provisioned production firewall, checked with the OpenSSH client.

The commands are rendered from the shipped playbooks, so a playbook edit that the documented sudo
rules would refuse fails here, not on a customer's firewall.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.firewall import NFT_RULESET, LinuxFirewall, LinuxHost, sudoers_text, wait_until
from support.sshd import make_key

from watchstander.playbooks import RenderedStep, library_dir, load_playbook

DOCS = Path(__file__).resolve().parents[3] / "docs" / "playbooks.md"
ATTACKER = "192.168.56.1"


def block_steps(minutes: int = 5) -> dict[str, RenderedStep]:
    """block-address-nftables rendered for the attacker, by step id."""
    playbook = load_playbook(library_dir() / "block-address-nftables.yaml")
    steps = playbook.render({"firewall": "fw", "address": ATTACKER, "minutes": minutes})
    return {step.id: step for step in steps}


def run_step(device: LinuxFirewall, step: RenderedStep) -> subprocess.CompletedProcess[str]:
    """Send the step's exact command line over SSH and check it against its `expect`."""
    assert step.command_line is not None
    result = device.ssh(step.command_line)
    if step.expect is not None and step.expect.output_contains is not None:
        assert step.expect.output_contains in result.stdout
    return result


@pytest.mark.privileged
@pytest.mark.integration
def test_block_playbook_commands_drop_and_release_the_attacker(linux_firewall: LinuxFirewall) -> None:
    steps = block_steps()
    assert linux_firewall.reachable_from_attacker()

    for step_id in ("set-exists", "add-element", "element-present"):
        result = run_step(linux_firewall, steps[step_id])
        assert result.returncode == 0, (step_id, result.stderr)
    assert f"{ATTACKER} timeout 5m" in linux_firewall.block_set()
    assert not linux_firewall.reachable_from_attacker(timeout=0.5)

    result = run_step(linux_firewall, steps["delete-element"])
    assert result.returncode == 0, result.stderr
    assert ATTACKER not in linux_firewall.block_set()
    assert linux_firewall.reachable_from_attacker()
    # The post-check now fails: nft reports a missing element with a non-zero status.
    assert linux_firewall.ssh(steps["element-present"].command_line or "").returncode != 0


@pytest.mark.privileged
@pytest.mark.integration
def test_element_with_a_short_timeout_expires_by_itself(linux_firewall: LinuxFirewall) -> None:
    # The sudo rule admits minutes only (the playbook's unit), so the short element is added as root.
    linux_firewall.nft("add", "element", "inet", "watchstander", "block_v4", f"{{ {ATTACKER} timeout 2s }}")
    assert not linux_firewall.reachable_from_attacker(timeout=0.5)
    assert wait_until(linux_firewall.reachable_from_attacker, timeout=8)


@pytest.mark.privileged
@pytest.mark.integration
@pytest.mark.parametrize("argv", [
    ["sudo", "-n", "nft", "flush", "ruleset"],
    ["sudo", "-n", "id"],
    ["sudo", "-n", "nft", "list", "ruleset"],
    ["sudo", "-n", "nft", "add", "element", "inet", "watchstander", "block_v4",
     "{ 192.168.56.1 timeout 5m }; flush ruleset"],
    ["sudo", "-n", "nft", "add", "element", "inet", "watchstander", "block_v4",
     "{ 192.168.56.1 timeout 5m }", ";", "flush", "ruleset"],
    ["sudo", "-n", "nft", "add", "element", "inet", "watchstander", "block_v4", "{ 192.168.56.1 timeout 2s }"],
    ["sudo", "-n", "nft", "add", "element", "inet", "watchstander", "block_v4", "{ 192.168.56.0/24 timeout 5m }"],
    ["sudo", "-n", "nft", "delete", "element", "inet", "watchstander", "block_v4", "{ 192.168.56.1, 10.0.0.1 }"],
    ["sudo", "-n", "nft", "add", "element", "inet", "watchstander", "block_v4",
     "{ 192.168.56.1 timeout 5m }\nflush ruleset"],
    ["sudo", "-n", "nft", "add", "element", "inet", "other", "block_v4", "{ 192.168.56.1 timeout 5m }"],
    ["sudo", "-n", "nft", "-f", "/dev/stdin"],
    ["sudo", "-n", "ss", "-tuapn", "-K"],
    ["sudo", "-n", "ss", "-tuapn", "-F", "/etc/shadow"],
], ids=["flush-ruleset", "id", "list-ruleset", "injected-command", "split-command", "seconds", "prefix",
        "two-elements", "newline", "other-table", "script", "ss-kill", "ss-filter-file"])
def test_sudo_refuses_anything_else(linux_firewall: LinuxFirewall, argv: list[str]) -> None:
    before = linux_firewall.nft("list", "ruleset")
    result = linux_firewall.ssh(argv)
    assert result.returncode != 0
    assert "a password is required" in result.stderr  # sudo -n's refusal, not an nft error
    assert linux_firewall.nft("list", "ruleset") == before


@pytest.mark.privileged
@pytest.mark.integration
def test_host_key_verification_refuses_an_unknown_or_other_key(linux_firewall: LinuxFirewall,
                                                                tmp_path: Path) -> None:
    assert linux_firewall.ssh(["true"]).returncode == 0

    empty = tmp_path / "empty_known_hosts"
    empty.write_text("", encoding="ascii")
    unknown = linux_firewall.ssh(["true"], known_hosts=empty)
    assert unknown.returncode == 255
    assert "Host key verification failed" in unknown.stderr

    other_key = make_key(tmp_path / "other", "other").split()[:2]
    other = tmp_path / "other_known_hosts"
    other.write_text(f"{linux_firewall.mgmt_address} {' '.join(other_key)}\n", encoding="ascii")
    changed = linux_firewall.ssh(["true"], known_hosts=other)
    assert changed.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in changed.stderr
    assert linux_firewall.host_key_fingerprint in changed.stderr


@pytest.mark.privileged
@pytest.mark.integration
def test_forensics_commands_run_as_the_provisioned_user(linux_host: LinuxHost) -> None:
    playbook = load_playbook(library_dir() / "linux-volatile-forensics.yaml")
    failed: dict[str, str] = {}
    for step in playbook.render({"host": "host"}):
        assert step.command_line is not None
        result = linux_host.ssh(step.command_line)
        if result.returncode != 0:
            failed[step.id] = result.stderr.strip()
        if step.id == "sockets":
            # Owning processes are only visible through sudo: sshd's listener names its program.
            assert 'users:(("sshd"' in result.stdout
    # What cannot succeed on this machine, whoever asks: a kernel built without loadable modules
    # (this CI's microVM) has no /proc/modules, and `last` fails where no wtmp was ever created.
    expected = {step for step, path in (("modules", "/proc/modules"), ("recent-logins", "/var/log/wtmp"))
                if not Path(path).exists()}
    assert set(failed) == expected, failed


def test_docs_quote_the_ruleset_and_sudo_rules_the_test_firewall_uses() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert NFT_RULESET in text
    assert sudoers_text("watchstander") in text
