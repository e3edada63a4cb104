"""`watchstander devices list|check NAME` against the IOS emulator over real SSH and snmpd over real SNMPv3.

`check` connects, verifies the host key and logs in, and runs nothing: the emulator records no session.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.ios_emulator import IosEmulator
from support.runkit import secret_file, snmp_device_toml, ssh_device_toml
from support.snmpd import Snmpd, snmpd_v3_fixture  # noqa: F401
from support.sshkeys import SshTestKeys, generate_keypair, write_known_hosts

from watchstander.agent.cli.main import main

pytestmark = pytest.mark.integration

Capsys = pytest.CaptureFixture[str]


def write_config(tmp_path: Path, devices_toml: str, extra: str = "") -> Path:
    """A private config with a store, a credentials dir and the given inventory."""
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700, exist_ok=True)
    path = tmp_path / "watchstander.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n'
                    f'[runner]\ncredentials_dir = "{creds}"\n{extra}\n{devices_toml}', encoding="utf-8")
    path.chmod(0o600)
    return path


def cli(capsys: Capsys, config: Path, *argv: str) -> tuple[int, str, str]:
    """Run `watchstander --config CONFIG ARGV...` in-process; (exit status, stdout, stderr)."""
    status = main(["--config", str(config), *argv])
    out, err = capsys.readouterr()
    return status, out, err


def router_toml(tmp_path: Path, keys: SshTestKeys, emulator: IosEmulator,
                known_hosts_lines: list[str] | None = None) -> str:
    """edge1: the emulated router with role cisco-router, its key in a file (as the runner conftest writes it)."""
    known = write_known_hosts(tmp_path / "known_hosts-edge1",
                              [emulator.known_hosts_line()] if known_hosts_lines is None else known_hosts_lines)
    return ssh_device_toml("edge1", "127.0.0.1", port=emulator.port, user=emulator.user,
                           key_file=keys.client.private_path, known_hosts=known, roles=["cisco-router"],
                           platform="cisco-ios")


def key_credential_toml(emulator: IosEmulator, known_hosts: Path, credential: str = "edge1-key") -> str:
    """edge1 whose SSH key is a named credential rather than a file."""
    return (f'[[devices]]\nname = "edge1"\naddress = "127.0.0.1"\nport = {emulator.port}\nplatform = "ios"\n'
            f'roles = ["cisco-router"]\n[devices.ssh]\nuser = "{emulator.user}"\nkey_credential = "{credential}"\n'
            f'known_hosts = "{known_hosts}"\nconnect_timeout_s = 5\n')


def test_list_shows_roles_and_no_secrets(tmp_path: Path, ssh_keys: SshTestKeys, router: Callable[..., IosEmulator],
                                         capsys: Capsys) -> None:
    emulator = router()
    config = write_config(tmp_path, router_toml(tmp_path, ssh_keys, emulator) + ssh_device_toml(
        "fw1", "10.0.0.1", port=2222, user="watchstander", key_file=ssh_keys.client.private_path,
        known_hosts=tmp_path / "kh", roles=["linux-firewall", "linux-host"]))
    status, out, err = cli(capsys, config, "devices", "list")
    assert status == 0, err
    assert "edge1" in out and "cisco-ios" in out and "cisco-router" in out
    assert "fw1" in out and "linux-firewall, linux-host" in out and "10.0.0.1:2222" in out
    private = ssh_keys.client.private_path.read_text(encoding="utf-8")
    status, out_json, err = cli(capsys, config, "devices", "list", "--format", "json")
    assert status == 0, err
    rows = {d["name"]: d for d in json.loads(out_json)["devices"]}
    assert rows["edge1"]["roles"] == ["cisco-router"] and rows["edge1"]["ssh"] is True
    assert rows["fw1"]["roles"] == ["linux-firewall", "linux-host"] and rows["fw1"]["port"] == 2222
    for text in (out, out_json):
        assert "PRIVATE KEY" not in text and private.splitlines()[1] not in text
    assert emulator.connections == 0


def test_check_ok_prints_the_fingerprint_and_runs_nothing(tmp_path: Path, ssh_keys: SshTestKeys,
                                                          router: Callable[..., IosEmulator], capsys: Capsys) -> None:
    emulator = router()
    config = write_config(tmp_path, router_toml(tmp_path, ssh_keys, emulator))
    status, out, err = cli(capsys, config, "devices", "check", "edge1")
    assert status == 0, out + err
    assert "edge1: ssh ok" in out and emulator.host_key_fingerprint in out
    # The emulator counts the login on its own thread just after it answers; give it a moment.
    deadline = time.monotonic() + 5
    while emulator.logins < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emulator.logins == 1 and emulator.sessions == []
    status, out, err = cli(capsys, config, "devices", "check", "edge1", "--format", "json")
    assert status == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True and report["checks"][0]["fingerprint"] == emulator.host_key_fingerprint
    assert emulator.sessions == []


def test_check_unknown_host_key_names_the_offered_fingerprint(tmp_path: Path, ssh_keys: SshTestKeys,
                                                              router: Callable[..., IosEmulator],
                                                              capsys: Capsys) -> None:
    emulator = router()
    config = write_config(tmp_path, router_toml(tmp_path, ssh_keys, emulator, known_hosts_lines=[]))
    status, out, err = cli(capsys, config, "devices", "check", "edge1")
    assert status == 14, out + err
    assert "HostKeyUnknown" in out and "edge1" in out and emulator.host_key_fingerprint in out
    assert emulator.logins == 0 and emulator.sessions == []


def test_check_refused_client_key_is_authentication_failed(tmp_path: Path, ssh_keys: SshTestKeys,
                                                           capsys: Capsys) -> None:
    stranger = generate_keypair(tmp_path / "stranger", "someone_else")
    emulator = IosEmulator(ssh_keys.host, [stranger]).start()
    try:
        config = write_config(tmp_path, router_toml(tmp_path, ssh_keys, emulator))
        status, out, err = cli(capsys, config, "devices", "check", "edge1")
        assert status == 14, out + err
        assert "AuthenticationFailed" in out and "edge1" in out
        assert emulator.logins == 0 and emulator.sessions == []
    finally:
        emulator.stop()


def test_check_missing_key_credential_names_it(tmp_path: Path, ssh_keys: SshTestKeys,
                                               router: Callable[..., IosEmulator], capsys: Capsys,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    emulator = router()
    known = write_known_hosts(tmp_path / "known_hosts", [emulator.known_hosts_line()])
    config = write_config(tmp_path, key_credential_toml(emulator, known, credential="nope"))
    status, out, err = cli(capsys, config, "devices", "check", "edge1")
    assert status == 14, out + err
    assert "CredentialError" in out and "'nope'" in out and "edge1" in out
    assert emulator.connections == 0


def test_check_unknown_device_is_exit_14(tmp_path: Path, capsys: Capsys) -> None:
    config = write_config(tmp_path, "")
    status, out, err = cli(capsys, config, "devices", "check", "no-such-device")
    assert status == 14, out + err
    assert "UnknownDevice" in out and "no-such-device" in out


def test_check_key_from_credentials_directory(tmp_path: Path, ssh_keys: SshTestKeys,
                                              router: Callable[..., IosEmulator], capsys: Capsys,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    emulator = router()
    systemd_creds = tmp_path / "systemd-credentials"
    systemd_creds.mkdir()
    # systemd restricts its credentials directory itself; the file mode is not checked there.
    (systemd_creds / "edge1-key").write_bytes(ssh_keys.client.private_path.read_bytes())
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(systemd_creds))
    known = write_known_hosts(tmp_path / "known_hosts", [emulator.known_hosts_line()])
    config = write_config(tmp_path, key_credential_toml(emulator, known))
    status, out, err = cli(capsys, config, "devices", "check", "edge1")
    assert status == 0, out + err
    assert emulator.host_key_fingerprint in out and emulator.sessions == []


def test_check_refuses_a_credential_others_may_read(tmp_path: Path, ssh_keys: SshTestKeys,
                                                    router: Callable[..., IosEmulator], capsys: Capsys,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    emulator = router()
    known = write_known_hosts(tmp_path / "known_hosts", [emulator.known_hosts_line()])
    config = write_config(tmp_path, key_credential_toml(emulator, known))
    key = tmp_path / "credentials" / "edge1-key"
    key.write_bytes(ssh_keys.client.private_path.read_bytes())
    key.chmod(0o644)
    status, out, err = cli(capsys, config, "devices", "check", "edge1")
    assert status == 14, out + err
    assert "may be read by others" in out and "644" in out
    assert emulator.connections == 0
    key.chmod(0o600)
    status, out, err = cli(capsys, config, "devices", "check", "edge1")
    assert status == 0, out + err


def snmp_config(tmp_path: Path, agent: Snmpd, auth_key: str | None = None) -> Path:
    """A config whose inventory has the snmpd as sw1, its keys in owner-only files."""
    user = agent.user
    return write_config(tmp_path, snmp_device_toml(
        "sw1", "127.0.0.1", port=agent.port or 0, user=user.name,
        auth_key_file=secret_file(tmp_path / "keys" / "auth", auth_key or user.auth_key),
        priv_key_file=secret_file(tmp_path / "keys" / "priv", user.priv_key), roles=["access-switch"]))


def test_check_snmp_reads_sys_uptime(tmp_path: Path, snmpd_v3: Snmpd, capsys: Capsys) -> None:
    config = snmp_config(tmp_path, snmpd_v3)
    status, out, err = cli(capsys, config, "devices", "check", "sw1", "--format", "json")
    assert status == 0, out + err
    check = json.loads(out)["checks"][0]
    assert check["ok"] is True and check["transport"] == "snmpv3" and check["sysUpTime"] is not None
    assert snmpd_v3.user.auth_key not in out and snmpd_v3.user.priv_key not in out


def test_check_snmp_wrong_auth_key_is_authentication_failed(tmp_path: Path, snmpd_v3: Snmpd,
                                                            capsys: Capsys) -> None:
    config = snmp_config(tmp_path, snmpd_v3, auth_key="not-the-auth-key-at-all")
    status, out, err = cli(capsys, config, "devices", "check", "sw1")
    assert status == 14, out + err
    assert "AuthenticationFailed" in out and "sw1" in out
    assert "not-the-auth-key-at-all" not in out + err
