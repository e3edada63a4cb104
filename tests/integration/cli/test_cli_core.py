"""The command-line contract: config check, replay, incidents, demo, exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watchstander.agent.cli.main import main
from watchstander.agent.demo.data import DEMO_TRUTH, write_demo_telemetry

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_config_check_prints_effective_config(capsys, config_file) -> None:  # type: ignore[no-untyped-def]
    cfg = config_file('[[assets]]\ncidr = "10.1.0.0/16"\nname = "lan"\nprotected = true\n')
    code, out, err = run(capsys, "config", "check", "--config", str(cfg))
    assert code == 0 and "config ok" in err
    assert '[[assets]]' in out and 'cidr = "10.1.0.0/16"' in out
    code, out, _ = run(capsys, "--config", str(cfg), "config", "check", "--format", "json")
    assert json.loads(out)["assets"][0]["protected"] is True


def test_config_check_names_every_bad_key_and_exits_2(capsys, config_file) -> None:  # type: ignore[no-untyped-def]
    cfg = config_file('[detectors.portscan]\nvertical_ports = 1\n[[assets]]\ncidr = "nonsense"\nname = "x"\n'
                      '[typo]\nx = 1\n')
    code, _, err = run(capsys, "config", "check", "--config", str(cfg))
    assert code == 2
    for key in ("detectors.portscan.vertical_ports", "assets[0].cidr", "typo"):
        assert key in err


def test_broken_toml_names_the_file(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "w.toml"
    cfg.write_text("[store\nurl = 1", encoding="utf-8")
    code, _, err = run(capsys, "config", "check", "--config", str(cfg))
    assert code == 2 and str(cfg) in err and "TOML" in err


def test_conf_d_dropins_apply_in_order(capsys, config_file) -> None:  # type: ignore[no-untyped-def]
    cfg = config_file('[logging]\nlevel = "INFO"\n')
    dropins = cfg.parent / "conf.d"
    dropins.mkdir()
    (dropins / "10-a.toml").write_text('[logging]\nlevel = "DEBUG"\n', encoding="utf-8")
    (dropins / "20-b.toml").write_text('[logging]\nlevel = "WARNING"\n[[assets]]\ncidr="10.9.0.0/16"\nname="b"\n',
                                       encoding="utf-8")
    code, out, _ = run(capsys, "config", "check", "--config", str(cfg), "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["logging"]["level"] == "WARNING" and data["assets"][0]["name"] == "b"


def test_missing_config_file_is_a_config_error(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "config", "check", "--config", str(tmp_path / "absent.toml"))
    assert code == 2 and "not found" in err


def test_replay_then_list_and_show(capsys, config_file, tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    cfg = str(config_file())
    files = [str(p) for p in write_demo_telemetry(tmp_path / "t", clock())]
    code, out, _ = run(capsys, "replay", "--config", cfg, "--format", "json", *files)
    assert code == 0
    summary = json.loads(out)
    assert summary["events"] > 4000 and len(summary["files"]) == 3
    assert [f["format"] for f in summary["files"]] == ["pcap", "syslog", "eve"]

    code, out, _ = run(capsys, "incidents", "list", "--config", cfg, "--format", "json")
    listed = json.loads(out)
    detected = {(d, i["entities"].get("attacker", [None])[0]) for i in listed for d in i["detectors"]}
    for detector, attacker, _victim in DEMO_TRUTH:
        assert (detector, attacker) in detected, (detector, attacker, detected)
    sevs = ["info", "low", "medium", "high", "critical"]
    ranks = [sevs.index(i["severity"]) for i in listed]
    assert ranks == sorted(ranks, reverse=True), "most severe first"

    target = next(i for i in listed if "portscan" in i["detectors"])
    code, out, _ = run(capsys, "incidents", "show", str(target["id"]), "--config", cfg, "--format", "json")
    shown = json.loads(out)
    assert code == 0
    for key in ("detectors", "attack_techniques", "entities", "counts", "first_seen", "last_seen", "verdict",
                "findings"):
        assert key in shown
    assert shown["entities"]["attacker"] == ["203.0.113.50"] and shown["entities"]["victim"] == ["10.20.0.10"]
    assert shown["attack_techniques"] == ["T1046"]
    assert shown["verdict"]["provenance"]["analyst"] == "baseline"

    code, out, _ = run(capsys, "incidents", "show", str(target["id"]), "--config", cfg)
    # The playbook was never approved here, so the guard refused the baseline's action: shown as refused.
    assert code == 0 and "TCP SYN port scan of 10.20.0.10 from 203.0.113.50" in out and "refused block-address-nftables" in out and "not_approved" in out


def test_replay_again_updates_instead_of_duplicating(capsys, config_file, tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    cfg = str(config_file())
    files = [str(p) for p in write_demo_telemetry(tmp_path / "t", clock())]
    run(capsys, "replay", "--config", cfg, *files)
    _, first, _ = run(capsys, "incidents", "list", "--config", cfg, "--format", "json")
    run(capsys, "replay", "--config", cfg, *files)
    _, second, _ = run(capsys, "incidents", "list", "--config", cfg, "--format", "json")
    assert [i["id"] for i in json.loads(first)] == [i["id"] for i in json.loads(second)]


def test_unknown_format_and_missing_file_exit_4(capsys, config_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = str(config_file())
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00\x01 this is not telemetry \xff" * 10)
    code, _, err = run(capsys, "replay", "--config", cfg, str(junk))
    assert code == 4 and "junk.pcap" in err
    code, _, err = run(capsys, "replay", "--config", cfg, str(tmp_path / "absent.log"))
    assert code == 4 and "no such file" in err


def test_show_unknown_incident_exits_5(capsys, config_file) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "incidents", "show", "4242", "--config", str(config_file()))
    assert code == 5 and "4242" in err


def test_garbage_records_are_counted_not_fatal(capsys, config_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "auth.log"
    log.write_bytes(b"Jan  5 10:00:00 host sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2\n"
                    b"\xff\xfe garbage line with no timestamp\n"
                    b"Jan  5 10:00:01 host sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2\n")
    code, out, _ = run(capsys, "replay", "--config", str(config_file()), "--format", "json", str(log))
    summary = json.loads(out)
    assert code == 0 and summary["events"] == 2
    assert summary["files"][0]["skipped"] == {"unparseable syslog line": 1}


def test_demo_runs_offline_and_writes_the_report(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path / "demo"))
    assert code == 0
    assert "incidents: 8" in out
    assert (tmp_path / "demo" / "watchstander.db").is_file()
    reports = sorted((tmp_path / "demo" / "report").iterdir())
    assert any(p.suffix == ".pdf" for p in reports) and any(p.suffix == ".html" for p in reports)


def test_help_lists_every_command(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("config", "replay", "incidents", "demo", "playbooks", "guidance"):
        assert cmd in out


def test_config_check_toml_reads_back_when_a_key_holds_a_dot(capsys, config_file) -> None:  # type: ignore[no-untyped-def]
    """A key with a dot (a playbook id like `block.v2` under [policy.rate_limits]) is quoted, not split."""
    import tomllib

    cfg = config_file('[policy.rate_limits]\n"block.v2" = 3\n"a-b_c" = 1\n'
                      '[policy.defaults."site.fw"]\nfirewall = "fw1"\n')
    code, out, _ = run(capsys, "config", "check", "--config", str(cfg))
    assert code == 0
    back = tomllib.loads(out)
    assert back["policy"]["rate_limits"] == {"block.v2": 3, "a-b_c": 1}
    assert back["policy"]["defaults"] == {"site.fw": {"firewall": "fw1"}}
