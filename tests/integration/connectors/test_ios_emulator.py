"""The IOS emulator itself, driven by plain asyncssh and by OpenSSH's client: it must look enough like
a router for the connector tests (and the playbook runs) that use it to mean something."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest
from support.ios_emulator import INVALID, IosEmulator
from support.sshkeys import SshTestKeys, write_known_hosts

pytestmark = pytest.mark.integration

Emulator = Callable[..., IosEmulator]


async def _connect(router: IosEmulator, keys: SshTestKeys, tmp_path: Path,
                   user: str = "watchstander") -> asyncssh.SSHClientConnection:
    known_hosts = write_known_hosts(tmp_path / "kh", [router.known_hosts_line()])
    return await asyncssh.connect("127.0.0.1", router.port, username=user, client_keys=[str(keys.client.private_path)],
                                  known_hosts=str(known_hosts), config=None, agent_path=None,
                                  x509_trusted_certs=None)


def exec_commands(router: IosEmulator, keys: SshTestKeys, tmp_path: Path,
                  *commands: str) -> list[asyncssh.SSHCompletedProcess]:
    async def main() -> list[asyncssh.SSHCompletedProcess]:
        conn = await _connect(router, keys, tmp_path)
        try:
            return [await conn.run(command, check=False) for command in commands]
        finally:
            conn.close()
            await conn.wait_closed()

    return asyncio.run(main())


def shell(router: IosEmulator, keys: SshTestKeys, tmp_path: Path,
          steps: list[tuple[str | None, str]]) -> list[str]:
    """Send each line of `steps` in an interactive shell and read until its expected prompt; the answers."""

    async def main() -> list[str]:
        conn = await _connect(router, keys, tmp_path)
        try:
            process = await conn.create_process(term_type="vt100")
            answers = []
            buffer = ""
            for line, prompt in [(None, "router>"), *steps]:
                if line is not None:
                    process.stdin.write(line + "\n")
                while not buffer.rstrip(" ").endswith(prompt):
                    chunk = await asyncio.wait_for(process.stdout.read(4096), 5)
                    assert chunk, f"session closed waiting for {prompt!r} after {line!r}: {buffer!r}"
                    buffer += chunk
                answers.append(buffer.replace("\r\n", "\n"))
                buffer = ""
            process.stdin.write("exit\n")
            await asyncio.wait_for(process.wait_closed(), 5)
            return answers
        finally:
            conn.close()
            await conn.wait_closed()

    return asyncio.run(main())


def test_exec_show_access_lists_prints_like_ios(ios_emulator: Emulator, ssh_keys: SshTestKeys,
                                                tmp_path: Path) -> None:
    router = ios_emulator()
    named, absent, every = exec_commands(router, ssh_keys, tmp_path, "show ip access-lists WATCHSTANDER-BLOCK",
                                         "show ip access-lists NOPE", "show access-lists")
    assert named.exit_status == 0
    assert named.stdout == "Extended IP access list WATCHSTANDER-BLOCK\n    10000 permit ip any any\n"
    assert absent.exit_status == 0 and absent.stdout == ""
    assert every.stdout == named.stdout
    assert router.sessions == [["show ip access-lists WATCHSTANDER-BLOCK"], ["show ip access-lists NOPE"],
                               ["show access-lists"]]


def test_exec_of_an_unknown_command_answers_invalid_input_with_status_1(
        ios_emulator: Emulator, ssh_keys: SshTestKeys, tmp_path: Path) -> None:
    router = ios_emulator(preload_block_acl=False)
    bad, empty = exec_commands(router, ssh_keys, tmp_path, "reload now", "show access-lists")
    assert bad.exit_status == 1 and INVALID in str(bad.stdout)
    assert empty.exit_status == 0 and empty.stdout == ""


def test_the_shell_walks_through_the_modes_and_changes_the_state(
        ios_emulator: Emulator, ssh_keys: SshTestKeys, tmp_path: Path) -> None:
    router = ios_emulator()
    answers = shell(router, ssh_keys, tmp_path, [
        ("terminal length 0", "router>"),
        ("configure terminal", "router>"),
        ("enable", "router#"),
        ("configure terminal", "router(config)#"),
        ("interface GigabitEthernet0/1", "router(config-if)#"),
        ("shutdown", "router(config-if)#"),
        ("exit", "router(config)#"),
        ("ip access-list extended WATCHSTANDER-BLOCK", "router(config-ext-nacl)#"),
        ("20 deny ip host 198.51.100.9 any log", "router(config-ext-nacl)#"),
        ("20 deny ip host 198.51.100.10 any", "router(config-ext-nacl)#"),
        ("30 deny ip host 300.1.1.1 any", "router(config-ext-nacl)#"),
        ("end", "router#"),
        ("show ip access-lists WATCHSTANDER-BLOCK", "router#"),
        ("show running-config interface GigabitEthernet0/1", "router#"),
        ("show interfaces GigabitEthernet0/1 status", "router#"),
        ("disable", "router>"),
    ])
    assert INVALID in answers[2]  # configure terminal needs privileged mode
    assert "% Duplicate sequence number" in answers[10]
    assert INVALID in answers[11]  # not an IPv4 address
    assert "    20 deny ip host 198.51.100.9 any log\n    10000 permit ip any any" in answers[13]
    assert "interface GigabitEthernet0/1\n shutdown\nend" in answers[14]
    assert "disabled" in answers[15]
    assert router.acl() == ["20 deny ip host 198.51.100.9 any log", "10000 permit ip any any"]
    assert router.interface_shutdown("GigabitEthernet0/1") and not router.interface_shutdown("GigabitEthernet0/2")
    assert router.sessions[0][:3] == ["terminal length 0", "configure terminal", "enable"]
    assert router.sessions[0][-1] == "exit"


def test_state_is_shared_across_sessions_and_saved_only_on_write(
        ios_emulator: Emulator, ssh_keys: SshTestKeys, tmp_path: Path) -> None:
    router = ios_emulator()
    shell(router, ssh_keys, tmp_path, [
        ("enable", "router#"), ("configure terminal", "router(config)#"),
        ("ip access-list extended WATCHSTANDER-BLOCK", "router(config-ext-nacl)#"),
        ("40 deny ip host 203.0.113.4 any log", "router(config-ext-nacl)#"), ("end", "router#"),
    ])
    before, saved, after = exec_commands(router, ssh_keys, tmp_path, "show startup-config", "write memory",
                                         "show startup-config")
    assert "203.0.113.4" in router.running_config()
    assert "203.0.113.4" not in str(before.stdout)
    assert saved.exit_status == 0 and "[OK]" in str(saved.stdout)
    assert " 40 deny ip host 203.0.113.4 any log" in str(after.stdout)
    answers = shell(router, ssh_keys, tmp_path, [
        ("enable", "router#"), ("configure terminal", "router(config)#"),
        ("ip access-list extended WATCHSTANDER-BLOCK", "router(config-ext-nacl)#"),
        ("no 40", "router(config-ext-nacl)#"), ("end", "router#"),
        ("copy running-config startup-config", "[startup-config]?"), ("", "router#"),
    ])
    assert "[OK]" in answers[-1]
    assert "203.0.113.4" not in router.startup_config() and router.acl() == ["10000 permit ip any any"]


def test_enable_password_is_asked_without_echo(ios_emulator: Emulator, ssh_keys: SshTestKeys,
                                                tmp_path: Path) -> None:
    router = ios_emulator(enable_password="s3cret")
    answers = shell(router, ssh_keys, tmp_path, [
        ("enable", "Password:"), ("guess", "router>"), ("enable", "Password:"), ("s3cret", "router#"),
    ])
    assert "% Access denied" in answers[2]
    assert "s3cret" not in "".join(answers) and "guess" not in "".join(answers)


async def _attempt_as(router: IosEmulator, keys: SshTestKeys, tmp_path: Path, user: str) -> None:
    async with await _connect(router, keys, tmp_path, user=user):
        pass  # pragma: no cover - must not get here


def test_only_the_authorized_key_and_user_get_in(ios_emulator: Emulator, ssh_keys: SshTestKeys,
                                                  tmp_path: Path) -> None:
    nobody_trusted = ios_emulator(authorized_keys=[])
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(_attempt_as(nobody_trusted, ssh_keys, tmp_path, "watchstander"))
    router = ios_emulator()
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(_attempt_as(router, ssh_keys, tmp_path, "root"))
    assert nobody_trusted.logins == 0 and router.logins == 0


def test_fail_on_and_delay_options(ios_emulator: Emulator, ssh_keys: SshTestKeys, tmp_path: Path) -> None:
    router = ios_emulator(fail_on="show access-lists", delay_s=0.3)
    started = time.monotonic()
    (failed,) = exec_commands(router, ssh_keys, tmp_path, "show access-lists")
    assert time.monotonic() - started >= 0.3
    assert failed.exit_status == 1 and INVALID in str(failed.stdout)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client (ssh) is not installed")
def test_openssh_client_can_talk_to_it(ios_emulator: Emulator, ssh_keys: SshTestKeys, tmp_path: Path) -> None:
    router = ios_emulator()
    known_hosts = write_known_hosts(tmp_path / "kh-openssh", [router.known_hosts_line()])
    result = subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(ssh_keys.client.private_path), "-p", str(router.port),
         "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
         "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "ConnectTimeout=5",
         "watchstander@127.0.0.1", "show ip access-lists WATCHSTANDER-BLOCK"],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Extended IP access list WATCHSTANDER-BLOCK\n    10000 permit ip any any\n"
