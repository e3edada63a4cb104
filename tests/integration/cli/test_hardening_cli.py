"""Issue 13, the command line: absurd numbers, special files given to replay, and terminal escapes.

Every case goes through `watchstander.agent.cli.main.main` with a real config, a real SQLite store,
real files (a FIFO, a directory, a device, a symlink loop) and, for the model's own text, the
scripted OpenAI-compatible server of tests/integration/triage on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from watchstander.agent.cli.main import main
from watchstander.agent.cli.output import dump_json

pytestmark = pytest.mark.integration

HUGE = str(2**70)  # 1180591620717411303424: past SQLite's signed 64-bit integers
ESC, BEL, CSI8 = "\x1b", "\x07", "\x9b"
# What must never reach a terminal raw: ESC and BEL (CSI, OSC, SGR), the C1 CSI, bidi overrides and
# isolates, line and paragraph separators, zero-width characters.
RAW = (ESC, BEL, CSI8, "\u202e", "\u2066", "\u2028", "\u2029", "\u200b")
CLEAR = f"{ESC}[2J{ESC}[H"
TITLE = f"{ESC}]0;owned{BEL}"
LINK = f"{ESC}]8;;http://evil.example/{BEL}click{ESC}]8;;{BEL}"
HIDDEN = f"{ESC}[8mhidden{ESC}[0m"
RLO = "\u202egnp.exe"


def run(*argv: str) -> tuple[int, str, str]:
    """One command; (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def assert_no_raw(text: str) -> None:
    """No terminal-active character in `text` (names the first one found)."""
    found = [f"U+{ord(c):04X}" for c in RAW if c in text]
    assert not found, f"raw {found} reached the terminal:\n{text!r}"


# ------------------------------------------------------------------ absurd numbers


def test_incident_id_past_sqlite_range_is_not_found(config_file) -> None:  # type: ignore[no-untyped-def]
    cfg = str(config_file())
    for bad in (HUGE, str(2**63), "0", "-1"):
        code, _, err = run("incidents", "show", "--config", cfg, "--", bad)
        assert code == 5, (bad, code, err)
        assert "no incident" in err and "Traceback" not in err
    code, _, err = run("incidents", "show", "--config", cfg, str(2**63 - 1))
    assert code == 5 and "no incident" in err


def test_list_limit_out_of_range_is_a_bad_argument(config_file, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = str(config_file())
    for bad in (HUGE, "-1", "0", "many"):
        with pytest.raises(SystemExit) as exc:
            main(["incidents", "list", "--config", cfg, "--limit", bad])
        err = capsys.readouterr().err
        assert exc.value.code == 2, (bad, err)
        assert "--limit" in err and "Traceback" not in err
    code, out, _ = run("incidents", "list", "--config", cfg, "--limit", "1")
    assert code == 0 and "no incidents" in out


# ------------------------------------------------------------------ special files given to replay


def test_replay_names_a_directory_device_and_symlink_loop(config_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = str(config_file())
    loop_a, loop_b = tmp_path / "loop-a", tmp_path / "loop-b"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    cases = {str(tmp_path): "is a directory", "/dev/null": "is a device", str(loop_a): "symlink loop",
             str(tmp_path / "absent.log"): "no such file", str(dangling): "no such file",
             str(tmp_path / "nul\x00byte"): "no such file"}
    for path, says in cases.items():
        code, _, err = run("replay", "--config", cfg, "--no-progress", path)
        assert code == 4, (path, code, err)
        assert says in err and path.split("\x00")[0] in err, (path, err)


def test_replay_refuses_a_fifo_without_blocking(config_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = str(config_file())
    fifo = tmp_path / "telemetry.pipe"
    os.mkfifo(fifo)
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(r=run("replay", "--config", cfg, "--no-progress",
                                                                  str(fifo))), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        # Replay opened the FIFO for reading and waits for a writer: be that writer, so it ends.
        with open(fifo, "wb"):
            pass
        worker.join(10)
        pytest.fail("replay blocked opening a FIFO")
    code, _, err = result["r"]
    assert code == 4 and "is a named pipe (FIFO)" in err and str(fifo) in err


# ------------------------------------------------------------------ what a terminal shows


def _load_scripted() -> ModuleType:
    """The triage tests' scripted OpenAI-compatible server, loaded as a plain module."""
    name = "watchstander_hardening_cli_scripted_llm"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "triage" / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


scripted = _load_scripted()


@pytest.fixture
def llm() -> Iterator[Any]:
    """A scripted model on 127.0.0.1:0 that answers with terminal escapes everywhere it can."""
    server = scripted.ScriptedServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def hostile_answer(request: dict[str, Any]) -> dict[str, Any]:
    """A verdict whose every free-text field carries escapes, with one unknown and one known playbook."""
    user = request["messages"][-1]["content"]
    cited = re.search(r'"((?:syslog|eve):[^"]+:[0-9]+)"', user)
    refs = [cited.group(1)] if cited else []
    return {
        "severity": "high", "confidence": 0.7, "disposition": "needs_review", "techniques": [],
        "summary": f"summary {CLEAR}{TITLE}", "rationale": f"rationale {LINK}{HIDDEN}{RLO}\u2028x",
        "evidence_refs": refs,
        "recommended_actions": [
            {"playbook": f"evil{ESC}[2J-playbook", "parameters": {"address": "203.0.113.9"},
             "justification": "trust me"},
            {"playbook": "block-address-nftables", "parameters": {"address": "203.0.113.9"},
             "justification": f"contain the guessing {TITLE}{RLO}"},
            {"playbook": "block-address-nftables", "parameters": {"address": "203.0.113.9"},
             "justification": "contain the guessing"},
        ],
    }


def hostile_telemetry(root: Path) -> list[Path]:
    """An auth.log with escapes in the host and user names, and an EVE file with escapes in signatures."""
    root.mkdir()
    host = f"gw{TITLE}{CLEAR}"
    user = f"adm{HIDDEN}{LINK}{RLO}"
    lines = [f"Mar 15 10:00:{k:02d} {host} sshd[1{k}]: Failed password for invalid user {user}{k} "
             f"from 203.0.113.9 port 5000{k} ssh2" for k in range(12)]
    lines.append(f"Mar 15 10:00:30 {host} sshd[99]: Accepted password for {user} from 203.0.113.9 port 50099 ssh2")
    auth = root / "auth.log"
    auth.write_text("\n".join(lines) + "\n", encoding="utf-8")
    alerts = [json.dumps({
        "timestamp": f"2025-03-15T10:00:0{k}.000000+0000", "event_type": "alert", "src_ip": "198.51.100.7",
        "src_port": 4000 + k, "dest_ip": "10.0.0.5", "dest_port": 80, "proto": "TCP",
        "alert": {"signature_id": 9000001, "signature": f"ET EXPLOIT {CLEAR}{TITLE}{LINK}{RLO}\u2028{CSI8}31m",
                  "category": f"cat{HIDDEN}", "severity": 1}}) for k in range(3)]
    eve = root / "eve.json"
    eve.write_text("\n".join(alerts) + "\n", encoding="utf-8")
    return [auth, eve]


def test_escapes_in_telemetry_and_model_text_never_reach_the_terminal(  # type: ignore[no-untyped-def]
        config_file, tmp_path: Path, llm) -> None:
    llm.script(then=scripted.dynamic(hostile_answer))
    key = tmp_path / "key"
    key.write_text("sk-test-hardening\n", encoding="utf-8")
    key.chmod(0o600)
    cfg = str(config_file(f'[triage]\nmodel = "openai:scripted-model"\nbase_url = "{llm.url}"\n'
                          f'timeout_s = 5.0\napi_key_file = "{key}"\n'))
    files = [str(p) for p in hostile_telemetry(tmp_path / "t")]

    code, out, err = run("replay", "--config", cfg, "--no-progress", *files)
    assert code == 0, err
    assert llm.calls >= 2, "the model triaged the incidents"
    assert "\\x1b" in out, "the escapes are shown, visibly"
    assert_no_raw(out)

    code, out, _ = run("incidents", "list", "--config", cfg)
    assert code == 0 and "\\x1b" in out
    assert_no_raw(out)

    code, listed, _ = run("incidents", "list", "--config", cfg, "--format", "json")
    incidents = json.loads(listed)
    assert len(incidents) == 2
    assert any(ESC in i["title"] for i in incidents), "JSON keeps the data, escaped as JSON"
    assert_no_raw(listed)

    for inc in incidents:
        code, out, _ = run("incidents", "show", str(inc["id"]), "--config", cfg)
        assert code == 0 and "summary \\x1b[2J" in out
        assert_no_raw(out)
        # The guard refused every action (no such playbook, escapes in the justification, not
        # approved): none reads as a suggestion.
        assert "suggest " not in out, out
        assert "refused evil\\x1b[2J-playbook" in out and ": unknown_playbook" in out
        assert ": suspicious_text" in out and "contain the guessing \\x1b]0;owned\\x07\\u202e" in out
        assert "refused block-address-nftables" in out and ": not_approved" in out
        code, shown, _ = run("incidents", "show", str(inc["id"]), "--config", cfg, "--format", "json")
        data = json.loads(shown)
        assert data["verdict"]["summary"].startswith("summary " + ESC)
        assert [g["reason"] for g in data["guard"]] == ["unknown_playbook", "suspicious_text",
                                                          "not_approved"]
        assert_no_raw(shown)


def test_dump_json_escapes_format_and_separator_characters() -> None:
    text = dump_json({"t": f"a{ESC}b\u202ec\u2028d\u2029e\x85f{CSI8}g\u200bh\U000e0041i", "ok": "café ü ✓"})
    assert_no_raw(text)
    assert "\\u202e" in text and "\U000e0041" not in text
    assert json.loads(text) == {"t": f"a{ESC}b\u202ec\u2028d\u2029e\x85f{CSI8}g\u200bh\U000e0041i",
                                "ok": "café ü ✓"}
    assert "café ü ✓" in text, "printable non-ASCII stays readable"


def test_show_keeps_allowed_actions_as_suggestions(config_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Only what the guard refused reads `refused`: an approved playbook's action stays `suggest`."""
    cfg = str(config_file('[[devices]]\nname = "fw-dmz"\naddress = "192.0.2.1"\nroles = ["linux-firewall"]\n\n'
                          '[policy.defaults.block-address-nftables]\nfirewall = "fw-dmz"\n'))
    code, _, err = run("playbooks", "approve", "block-address-nftables", "--config", cfg, "--comment", "reviewed")
    assert code == 0, err
    auth, _eve = hostile_telemetry(tmp_path / "t")
    code, _, err = run("replay", "--config", cfg, "--no-progress", str(auth))
    assert code == 0, err
    code, out, _ = run("incidents", "show", "1", "--config", cfg)
    assert code == 0 and "suggest block-address-nftables" in out and "refused" not in out, out
    assert_no_raw(out)
    code, shown, _ = run("incidents", "show", "1", "--config", cfg, "--format", "json")
    assert [g["allowed"] for g in json.loads(shown)["guard"]] == [True]
