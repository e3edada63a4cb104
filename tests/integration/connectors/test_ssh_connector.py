"""The SSH connector against a real asyncssh server on 127.0.0.1 (the IOS emulator): host keys, keys,
failures translated into DeviceErrors, bounded output, connection reuse and IOS configuration sessions."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from support.ios_emulator import IosEmulator
from support.sshkeys import SshTestKeys, generate_keypair, known_hosts_line, write_known_hosts

from watchstander.connectors.errors import (
    AuthenticationFailed,
    DeviceRefused,
    DeviceTimeout,
    DeviceUnreachable,
    HostKeyChanged,
    HostKeyUnknown,
)
from watchstander.connectors.ssh import FIPS_ALGORITHMS, CommandResult, SshPool, SshTarget

pytestmark = pytest.mark.integration

Emulator = Callable[..., IosEmulator]
Target = Callable[..., SshTarget]
WithPool = Callable[..., Any]

BLOCK_LINES = ["ip access-list extended WATCHSTANDER-BLOCK", "10 deny ip host 192.0.2.7 any log"]


def run_one(with_pool: WithPool, target: SshTarget, command: str, timeout_s: float = 10.0, **kw: Any) -> CommandResult:
    async def body(pool: SshPool) -> CommandResult:
        return await pool.run(target, command, timeout_s)

    result: CommandResult = with_pool(body, **kw)
    return result


def configure(with_pool: WithPool, target: SshTarget, lines: list[str], *, save: bool = False,
              timeout_s: float = 10.0) -> CommandResult:
    async def body(pool: SshPool) -> CommandResult:
        return await pool.configure(target, lines, save=save, timeout_s=timeout_s)

    result: CommandResult = with_pool(body)
    return result


# -- commands -----------------------------------------------------------------------------------

def test_run_returns_output_and_exit_status(ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool) -> None:
    router = ios_emulator()
    result = run_one(with_pool, ssh_target(router), "show ip access-lists WATCHSTANDER-BLOCK")
    assert result.exit_status == 0
    assert result.stdout == "Extended IP access list WATCHSTANDER-BLOCK\n    10000 permit ip any any\n"
    assert not result.truncated and result.stderr == "" and result.elapsed_s >= 0
    assert router.sessions == [["show ip access-lists WATCHSTANDER-BLOCK"]]


def test_a_non_zero_exit_status_is_a_result_not_an_error(ios_emulator: Emulator, ssh_target: Target,
                                                         with_pool: WithPool) -> None:
    result = run_one(with_pool, ssh_target(ios_emulator()), "show frobnicators")
    assert result.exit_status == 1
    assert "% Invalid input detected" in result.stdout


def test_output_is_cut_at_max_output_and_says_so(ios_emulator: Emulator, ssh_target: Target,
                                                 with_pool: WithPool) -> None:
    router = ios_emulator()
    full = run_one(with_pool, ssh_target(router), "show running-config")
    cut = run_one(with_pool, ssh_target(router), "show running-config", max_output=40)
    assert len(full.stdout) > 40 and not full.truncated
    assert cut.truncated and cut.stdout == full.stdout[:40] and cut.exit_status == 0


def test_a_command_that_does_not_answer_in_time_is_a_timeout(ios_emulator: Emulator, ssh_target: Target,
                                                             with_pool: WithPool) -> None:
    router = ios_emulator(delay_s=3.0)
    with pytest.raises(DeviceTimeout) as caught:
        run_one(with_pool, ssh_target(router), "show access-lists", timeout_s=0.5)
    assert caught.value.device == "edge-router"
    assert "show access-lists" in str(caught.value) and "edge-router" in str(caught.value)


def test_concurrent_commands_share_one_connection(ios_emulator: Emulator, ssh_target: Target,
                                                  with_pool: WithPool) -> None:
    router = ios_emulator()
    target = ssh_target(router)

    async def body(pool: SshPool) -> list[CommandResult]:
        first = await asyncio.gather(*(pool.run(target, "show access-lists", 10) for _ in range(12)))
        second = await asyncio.gather(*(pool.run(target, "show ip access-lists", 10) for _ in range(4)))
        return [*first, *second]

    results = with_pool(body)
    assert [r.exit_status for r in results] == [0] * 16
    assert router.connections == 1 and router.logins == 1
    assert len(router.sessions) == 16


def test_a_dead_connection_is_reopened(ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool) -> None:
    router = ios_emulator()
    target = ssh_target(router)

    async def body(pool: SshPool) -> tuple[CommandResult, CommandResult]:
        before = await pool.run(target, "show access-lists", 10)
        await asyncio.to_thread(router.disconnect_all)
        await asyncio.sleep(0.05)
        return before, await pool.run(target, "show access-lists", 10)

    before, after = with_pool(body)
    assert before.exit_status == after.exit_status == 0
    assert router.connections == 2


def test_the_client_key_can_come_from_a_credential(ios_emulator: Emulator, ssh_target: Target,
                                                   ssh_keys: SshTestKeys, with_pool: WithPool) -> None:
    router = ios_emulator()
    target = ssh_target(router, key_file=None, client_key=ssh_keys.client.private_bytes())
    assert run_one(with_pool, target, "show access-lists").exit_status == 0
    assert "PRIVATE" not in repr(target)


# -- host keys, authentication, reachability ---------------------------------------------------

def test_an_unknown_host_key_is_refused_with_the_offered_fingerprint(
        ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool, tmp_path: Any) -> None:
    router = ios_emulator()
    other = generate_keypair(tmp_path / "other", "elsewhere")
    known_hosts = write_known_hosts(tmp_path / "kh-other-host", [known_hosts_line("192.0.2.1", 22, other)])
    with pytest.raises(HostKeyUnknown) as caught:
        run_one(with_pool, ssh_target(router, known_hosts=known_hosts), "show access-lists")
    message = str(caught.value)
    assert caught.value.fingerprint == router.host_key_fingerprint
    assert router.host_key_fingerprint in message
    assert "edge-router" in message and f"127.0.0.1:{router.port}" in message
    assert router.sessions == [] and router.logins == 0


def test_a_missing_known_hosts_file_means_unknown_never_trusted(
        ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool, tmp_path: Any) -> None:
    router = ios_emulator()
    with pytest.raises(HostKeyUnknown) as caught:
        run_one(with_pool, ssh_target(router, known_hosts=tmp_path / "absent"), "show access-lists")
    assert caught.value.fingerprint == router.host_key_fingerprint
    assert "does not exist" in str(caught.value)


def test_a_changed_host_key_is_refused_with_the_offered_fingerprint(
        ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool, tmp_path: Any) -> None:
    router = ios_emulator()
    impostor_was = generate_keypair(tmp_path / "old", "old_host_key")
    known_hosts = write_known_hosts(tmp_path / "kh-changed", [known_hosts_line("127.0.0.1", router.port, impostor_was)])
    with pytest.raises(HostKeyChanged) as caught:
        run_one(with_pool, ssh_target(router, known_hosts=known_hosts), "show access-lists")
    message = str(caught.value)
    assert caught.value.fingerprint == router.host_key_fingerprint
    assert router.host_key_fingerprint in message and impostor_was.fingerprint not in message
    assert "edge-router" in message and f"127.0.0.1:{router.port}" in message
    assert router.sessions == [] and router.logins == 0


def test_a_key_known_for_another_port_is_not_trusted_here(
        ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool, tmp_path: Any) -> None:
    router = ios_emulator()
    other = generate_keypair(tmp_path / "other", "other_port")
    known_hosts = write_known_hosts(tmp_path / "kh-ports", [
        known_hosts_line("127.0.0.1", router.port, other),
        known_hosts_line("127.0.0.1", router.port + 1 if router.port < 65535 else 1, router.host_key),
    ])
    with pytest.raises(HostKeyChanged):
        run_one(with_pool, ssh_target(router, known_hosts=known_hosts), "show access-lists")


def test_a_bare_address_entry_does_not_cover_other_ports(
        ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool, tmp_path: Any) -> None:
    router = ios_emulator()
    known_hosts = write_known_hosts(tmp_path / "kh-bare", [known_hosts_line("127.0.0.1", 22, router.host_key)])
    with pytest.raises(HostKeyUnknown):
        run_one(with_pool, ssh_target(router, known_hosts=known_hosts), "show access-lists")


def test_a_refused_client_key_is_an_authentication_failure(
        ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool, tmp_path: Any) -> None:
    router = ios_emulator()
    stranger = generate_keypair(tmp_path / "stranger", "stranger_key")
    with pytest.raises(AuthenticationFailed) as caught:
        run_one(with_pool, ssh_target(router, key_file=stranger.private_path), "show access-lists")
    assert "edge-router" in str(caught.value)
    with pytest.raises(AuthenticationFailed):
        run_one(with_pool, ssh_target(router, user="admin"), "show access-lists")
    assert router.sessions == [] and router.logins == 0


def test_a_missing_client_key_file_is_an_authentication_failure(
        ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool, tmp_path: Any) -> None:
    router = ios_emulator()
    with pytest.raises(AuthenticationFailed) as caught:
        run_one(with_pool, ssh_target(router, key_file=tmp_path / "no-such-key"), "show access-lists")
    assert "no-such-key" in str(caught.value)
    assert router.connections == 0


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_refused_connection_is_unreachable(ssh_target: Target, ios_emulator: Emulator, with_pool: WithPool,
                                             closed_port: int) -> None:
    target = replace(ssh_target(ios_emulator()), port=closed_port)
    with pytest.raises(DeviceUnreachable) as caught:
        run_one(with_pool, target, "show access-lists")
    assert f"127.0.0.1:{closed_port}" in str(caught.value) and "edge-router" in str(caught.value)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        yield sock.getsockname()[1]


def test_a_device_that_never_speaks_ssh_is_a_timeout(ssh_target: Target, ios_emulator: Emulator,
                                                     with_pool: WithPool, silent_listener: int) -> None:
    target = replace(ssh_target(ios_emulator()), port=silent_listener, connect_timeout_s=0.5)
    with pytest.raises(DeviceTimeout) as caught:
        run_one(with_pool, target, "show access-lists")
    assert "edge-router" in str(caught.value)


def test_check_returns_the_verified_fingerprint_and_runs_nothing(
        ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool) -> None:
    router = ios_emulator()

    info = with_pool(lambda pool: pool.check(ssh_target(router)))
    assert info.fingerprint == router.host_key_fingerprint and info.fingerprint.startswith("SHA256:")
    assert info.key_type == "ssh-ed25519"
    assert info.server_version.startswith("SSH-2.0-")
    assert router.logins == 1 and router.sessions == []


# -- configuration sessions --------------------------------------------------------------------

def test_configure_sends_exactly_the_expected_session(ios_emulator: Emulator, ssh_target: Target,
                                                      with_pool: WithPool) -> None:
    router = ios_emulator()
    result = configure(with_pool, ssh_target(router), BLOCK_LINES)
    assert router.sessions == [[
        "terminal length 0", "enable", "configure terminal",
        "ip access-list extended WATCHSTANDER-BLOCK", "10 deny ip host 192.0.2.7 any log",
        "end", "exit",
    ]]
    assert router.acl() == ["10 deny ip host 192.0.2.7 any log", "10000 permit ip any any"]
    assert "192.0.2.7" not in router.startup_config()  # not saved
    assert "router(config-ext-nacl)#10 deny ip host 192.0.2.7 any log" in result.stdout
    assert result.exit_status == 0 and not result.truncated

    rollback = configure(with_pool, ssh_target(router), ["ip access-list extended WATCHSTANDER-BLOCK", "no 10"])
    assert rollback.exit_status == 0
    assert router.acl() == ["10000 permit ip any any"]


def test_configure_with_save_copies_to_the_startup_config(ios_emulator: Emulator, ssh_target: Target,
                                                          with_pool: WithPool) -> None:
    router = ios_emulator()
    result = configure(with_pool, ssh_target(router), ["interface GigabitEthernet0/2", "shutdown"], save=True)
    assert router.sessions == [[
        "terminal length 0", "enable", "configure terminal", "interface GigabitEthernet0/2", "shutdown",
        "end", "copy running-config startup-config", "", "exit",
    ]]
    assert router.interface_shutdown("GigabitEthernet0/2")
    assert "interface GigabitEthernet0/2\n shutdown" in router.startup_config()
    assert "[OK]" in result.stdout


def test_a_line_the_device_refuses_raises_device_refused_naming_it(
        ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool) -> None:
    router = ios_emulator(fail_on="10 deny ip host 192.0.2.7 any log")
    with pytest.raises(DeviceRefused) as caught:
        configure(with_pool, ssh_target(router), [*BLOCK_LINES, "20 deny ip host 192.0.2.8 any log"])
    assert "10 deny ip host 192.0.2.7 any log" in str(caught.value)
    assert "% Invalid input detected" in str(caught.value) and caught.value.device == "edge-router"
    # Nothing after the refused line was sent, and nothing was saved.
    assert router.sessions[0][-1] == "10 deny ip host 192.0.2.7 any log"
    assert router.acl() == ["10000 permit ip any any"]

    with pytest.raises(DeviceRefused) as caught:
        configure(with_pool, ssh_target(router), ["ip access-list extended WATCHSTANDER-BLOCK", "20 frobnicate"])
    assert "20 frobnicate" in str(caught.value)


def test_enable_answers_the_password_prompt_with_the_enable_secret(
        ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool) -> None:
    router = ios_emulator(enable_password="en-secret")
    result = configure(with_pool, ssh_target(router, enable_secret="en-secret"), BLOCK_LINES)
    assert router.sessions[0][:4] == ["terminal length 0", "enable", "en-secret", "configure terminal"]
    assert "en-secret" not in result.stdout  # the device does not echo it, so the transcript never holds it
    assert router.acl()[0] == "10 deny ip host 192.0.2.7 any log"


def test_a_refused_or_missing_enable_secret_is_an_authentication_failure(
        ios_emulator: Emulator, ssh_target: Target, with_pool: WithPool) -> None:
    router = ios_emulator(enable_password="en-secret")
    with pytest.raises(AuthenticationFailed) as caught:
        configure(with_pool, ssh_target(router, enable_secret="wrong"), BLOCK_LINES)
    assert "wrong" not in str(caught.value) and "edge-router" in str(caught.value)
    with pytest.raises(AuthenticationFailed):
        configure(with_pool, ssh_target(router), BLOCK_LINES)
    assert all("configure terminal" not in session for session in router.sessions)


def test_a_stalled_configuration_session_is_a_timeout(ios_emulator: Emulator, ssh_target: Target,
                                                      with_pool: WithPool) -> None:
    router = ios_emulator(delay_s=0.4)
    with pytest.raises(DeviceTimeout) as caught:
        configure(with_pool, ssh_target(router), BLOCK_LINES, timeout_s=1.0)
    assert "edge-router" in str(caught.value)


def test_configure_is_for_network_devices_only(ios_emulator: Emulator, ssh_target: Target,
                                               with_pool: WithPool) -> None:
    router = ios_emulator()
    with pytest.raises(DeviceRefused, match="configuration sessions are for network devices"):
        configure(with_pool, ssh_target(router, platform="linux"), BLOCK_LINES)
    assert router.connections == 0


def test_configure_works_with_the_fips_algorithms_only(ios_emulator: Emulator, ssh_target: Target,
                                                       with_pool: WithPool, tmp_path: Any) -> None:
    host = generate_keypair(tmp_path / "fips", "host_key", "ecdsa-sha2-nistp256")
    client = generate_keypair(tmp_path / "fips", "client_key", "ecdsa-sha2-nistp384")
    assert FIPS_ALGORITHMS.kex and FIPS_ALGORITHMS.ciphers and FIPS_ALGORITHMS.macs and FIPS_ALGORITHMS.host_key
    # The server offers nothing else, so a connection proves the preset negotiates.
    router = ios_emulator(host_key=host, authorized_keys=[client], server_options={
        "kex_algs": list(FIPS_ALGORITHMS.kex), "encryption_algs": list(FIPS_ALGORITHMS.ciphers),
        "mac_algs": list(FIPS_ALGORITHMS.macs),
        "signature_algs": ["ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "rsa-sha2-256", "rsa-sha2-512"],
    })
    target = ssh_target(router, key_file=client.private_path, algorithms=FIPS_ALGORITHMS)
    result = configure(with_pool, target, BLOCK_LINES)
    assert result.exit_status == 0 and router.acl()[0] == "10 deny ip host 192.0.2.7 any log"
    info = with_pool(lambda pool: pool.check(target))
    assert info.key_type == "ecdsa-sha2-nistp256" and info.fingerprint == host.fingerprint


def test_every_fips_algorithm_name_is_one_asyncssh_knows() -> None:
    from asyncssh.encryption import get_encryption_algs
    from asyncssh.kex import get_kex_algs
    from asyncssh.mac import get_mac_algs
    from asyncssh.public_key import get_public_key_algs

    for names, known in ((FIPS_ALGORITHMS.kex, get_kex_algs()), (FIPS_ALGORITHMS.ciphers, get_encryption_algs()),
                         (FIPS_ALGORITHMS.macs, get_mac_algs()), (FIPS_ALGORITHMS.host_key, get_public_key_algs())):
        assert names
        assert {name.encode() for name in names} <= set(known)
