"""The [[devices]] inventory, [runner] and [notify.webhooks] config: what is accepted, and refusals naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.cli.main import main
from watchstander.agent.config.load import load_config, validate_config
from watchstander.agent.errors import ConfigError

SSH = {"user": "watchstander", "key_credential": "fw1-ssh-key", "known_hosts": "/etc/watchstander/known_hosts"}
V3 = {"user": "watchstander", "auth_key_credential": "sw1-snmp-auth", "priv_key_credential": "sw1-snmp-priv"}


def device(**over: Any) -> dict[str, Any]:
    """One raw [[devices]] entry, with keys replaced or added."""
    return {"name": "fw1", "address": "10.0.0.1", **over}


def problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """The (key path, message) pairs validate_config refuses `raw` with."""
    with pytest.raises(ConfigError) as exc:
        validate_config(raw)
    return list(exc.value.problems)


def test_a_valid_inventory_is_accepted_and_normalised() -> None:
    cfg = validate_config({
        "devices": [
            device(platform="linux", roles=["linux-firewall", "linux-host", "linux-host"], ssh=SSH),
            device(name="edge1", address="Edge1.Example.NET", platform="ios", roles=["cisco-router"],
                   ssh={"user": "netops", "key_file": "/etc/watchstander/edge1.key",
                        "known_hosts": "/etc/watchstander/known_hosts", "algorithms": "fips"}),
            device(name="sw1", address="2001:db8::0:7", roles=["access-switch"], snmp=V3),
        ],
        "runner": {"alert_webhook": "soc", "alert_email": False},
        "notify": {"webhooks": {"soc": {"url": "https://chat.example.mil/hooks/watch",
                                        "token_credential": "soc-webhook-token"}}},
    })
    fw1, edge1, sw1 = cfg.devices
    assert fw1.platform == "linux" and fw1.roles == ("linux-firewall", "linux-host") and fw1.port == 22
    assert fw1.ssh is not None and fw1.ssh.key_credential == "fw1-ssh-key" and fw1.ssh.key_file is None
    assert edge1.platform == "cisco-ios"  # "ios" is an alias
    assert edge1.address == "edge1.example.net"
    assert edge1.ssh is not None and edge1.ssh.algorithms == "fips"
    assert sw1.address == "2001:db8::7" and sw1.ssh is None and sw1.snmp is not None
    assert (sw1.snmp.version, sw1.snmp.auth_protocol, sw1.snmp.priv_protocol) == ("3", "SHA-256", "AES-128")
    assert cfg.runner.alert_webhook == "soc" and cfg.notify.webhooks["soc"].token_credential == "soc-webhook-token"


def test_snmp_version_written_as_a_toml_integer_is_version_3() -> None:
    cfg = validate_config({"devices": [device(snmp={**V3, "version": 3})]})
    assert cfg.devices[0].snmp is not None and cfg.devices[0].snmp.version == "3"


def test_snmp_v2c_only_with_a_community() -> None:
    cfg = validate_config({"devices": [device(snmp={"version": "2c", "community_credential": "sw1-community"})]})
    assert cfg.devices[0].snmp is not None and cfg.devices[0].snmp.version == "2c"


@pytest.mark.parametrize(("raw", "path", "words"), [
    ({"devices": [device(), device(address="10.0.0.2")]}, None, "duplicate device names: fw1"),
    ({"devices": [device(name="fw 1")]}, "devices[0].name", ""),
    ({"devices": [device(name="-fw1")]}, "devices[0].name", ""),
    ({"devices": [device(roles=["Edge Router"])]}, "devices[0].roles", "Edge Router"),
    ({"devices": [device(address="not an address!")]}, "devices[0].address", "not an address!"),
    ({"devices": [device(address="10.0.0.256")]}, "devices[0].address", "10.0.0.256"),
    ({"devices": [device(address="1.2.3")]}, "devices[0].address", "1.2.3"),
    ({"devices": [device(address="")]}, "devices[0].address", ""),
    ({"devices": [device(platform="junos")]}, "devices[0].platform", ""),
    ({"devices": [device(ssh={"user": "ws", "known_hosts": "/k"})]}, "devices[0].ssh", "key_file"),
    ({"devices": [device(ssh={**SSH, "key_file": "/k"})]}, "devices[0].ssh", "not both"),
    ({"devices": [device(ssh={"user": "ws", "key_credential": "k"})]}, "devices[0].ssh.known_hosts", ""),
    ({"devices": [device(ssh={**SSH, "password": "x"})]}, "devices[0].ssh.password", ""),
    ({"devices": [device(snmp={k: v for k, v in V3.items() if k != "user"})]}, "devices[0].snmp", "user"),
    ({"devices": [device(snmp={k: v for k, v in V3.items() if k != "priv_key_credential"})]},
     "devices[0].snmp", "priv_key"),
    ({"devices": [device(snmp={k: v for k, v in V3.items() if k != "auth_key_credential"})]},
     "devices[0].snmp", "auth_key"),
    ({"devices": [device(snmp={**V3, "community_credential": "c"})]}, "devices[0].snmp", "community"),
    ({"devices": [device(snmp={"version": "2c"})]}, "devices[0].snmp", "community"),
    ({"devices": [device(snmp={"version": "2c", "community_credential": "c", "auth_key_credential": "a"})]},
     "devices[0].snmp", "2c"),
    ({"devices": [device(snmp={"version": "1", "community_credential": "c"})]}, "devices[0].snmp.version", ""),
    ({"devices": [device(snmp={**V3, "auth_protocol": "MD5"})]}, "devices[0].snmp.auth_protocol", ""),
    ({"devices": [device(snmp={**V3, "auth_protocol": "SHA"})]}, "devices[0].snmp.auth_protocol", ""),
    ({"devices": [device(snmp={**V3, "auth_protocol": "SHA-1"})]}, "devices[0].snmp.auth_protocol", ""),
    ({"devices": [device(snmp={**V3, "priv_protocol": "DES"})]}, "devices[0].snmp.priv_protocol", ""),
    ({"runner": {"alert_webhook": "soc"}}, None, "runner.alert_webhook"),
    ({"notify": {"webhooks": {"SOC": {"url": "https://x.example"}}}}, "notify.webhooks", "SOC"),
    ({"notify": {"webhooks": {"soc": {"url": "ftp://x.example/h"}}}}, "notify.webhooks.soc.url", ""),
    ({"notify": {"webhooks": {"soc": {"url": "https://x.example", "token_credential": "t", "token_file": "/t"}}}},
     "notify.webhooks.soc", "not both"),
    ({"runner": {"output_limit": 10}}, "runner.output_limit", ""),
])
def test_bad_inventory_is_refused_naming_the_key(raw: dict[str, Any], path: str | None, words: str) -> None:
    found = problems(raw)
    assert len(found) == 1, found
    where, message = found[0]
    if path is not None:
        assert where == path, found
    assert words in message, found


def test_dropins_add_devices_rather_than_replace_them(tmp_path: Path) -> None:
    main_file = tmp_path / "watchstander.toml"
    main_file.write_text('[[devices]]\nname = "fw1"\naddress = "10.0.0.1"\nroles = ["linux-firewall"]\n',
                         encoding="utf-8")
    dropins = tmp_path / "conf.d"
    dropins.mkdir()
    (dropins / "10-routers.toml").write_text(
        '[[devices]]\nname = "edge1"\naddress = "10.0.0.254"\nplatform = "ios"\nroles = ["cisco-router"]\n',
        encoding="utf-8")
    (dropins / "20-switches.toml").write_text('[[devices]]\nname = "sw1"\naddress = "10.0.0.253"\n'
                                              '[[devices]]\nname = "sw2"\naddress = "10.0.0.252"\n',
                                              encoding="utf-8")
    cfg = load_config(main_file)
    assert [d.name for d in cfg.devices] == ["fw1", "edge1", "sw1", "sw2"]
    assert cfg.devices[1].platform == "cisco-ios"

    # A drop-in that repeats a name is a duplicate, not an override.
    (dropins / "30-again.toml").write_text('[[devices]]\nname = "fw1"\naddress = "10.0.0.9"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(main_file)
    assert any("duplicate device names: fw1" in message for _, message in exc.value.problems)


INVENTORY = """
[runner]
alert_webhook = "soc"
credentials_dir = "{creds}"

[notify.webhooks.soc]
url = "https://chat.example.mil/hooks/watch"
token_file = "{token_file}"

[[devices]]
name = "fw1"
address = "10.0.0.1"
roles = ["linux-firewall"]
[devices.ssh]
user = "watchstander"
key_credential = "fw1-ssh-key"
known_hosts = "/etc/watchstander/known_hosts"

[[devices]]
name = "sw1"
address = "10.0.0.2"
roles = ["access-switch"]
[devices.snmp]
user = "watchstander"
auth_key_file = "{auth_file}"
priv_key_credential = "sw1-snmp-priv"
"""


def test_config_check_shows_the_inventory_and_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    secrets = {"token": "webhook-token-value-9f31", "auth": "snmp-auth-key-value-77aa",
               "priv": "snmp-priv-key-value-01bc", "key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r\n"}
    files = {"soc-token": secrets["token"], "sw1-auth": secrets["auth"], "sw1-snmp-priv": secrets["priv"],
             "fw1-ssh-key": secrets["key"]}
    for file, value in files.items():
        (creds / file).write_text(value, encoding="utf-8")
        (creds / file).chmod(0o600)
    cfg = tmp_path / "watchstander.toml"
    cfg.write_text(INVENTORY.format(creds=creds, token_file=creds / "soc-token", auth_file=creds / "sw1-auth"),
                   encoding="utf-8")
    cfg.chmod(0o600)
    for fmt in ("toml", "json"):
        status = main(["--config", str(cfg), "config", "check", "--format", fmt])
        out, err = capsys.readouterr()
        assert status == 0, err
        assert "fw1" in out and "sw1" in out and "fw1-ssh-key" in out and "sw1-snmp-priv" in out
        for value in secrets.values():
            assert value.strip() not in out + err
        assert "b3BlbnNzaC1r" not in out + err


def test_config_check_names_the_bad_device_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "watchstander.toml"
    cfg.write_text('[[devices]]\nname = "sw1"\naddress = "10.0.0.2"\n[devices.snmp]\nuser = "w"\n'
                   'auth_protocol = "MD5"\nauth_key_credential = "a"\npriv_key_credential = "p"\n', encoding="utf-8")
    status = main(["--config", str(cfg), "config", "check"])
    _, err = capsys.readouterr()
    assert status == 2
    assert "devices[0].snmp.auth_protocol" in err
