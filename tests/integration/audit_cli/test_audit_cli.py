"""`watchstander audit verify|export` on real SQLite files, tampered with behind the agent's back."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.cli import audit as cli_audit
from watchstander.agent.cli import main as cli
from watchstander.agent.cli.context import Context
from watchstander.agent.errors import WatchstanderError
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration

HOSTILE = 'pipe|back\\slash=equals\nnew\rline'
CEF = re.compile(r"^CEF:0(?:\|(?:[^|\\\r\n]|\\[|\\])*){6}\|(?P<ext>.*)$")
EXT_PAIR = re.compile(r"(\w+)=((?:[^\\=\r\n]|\\[\\=nr])*?)(?= \w+=|$)")


@pytest.fixture
def site() -> Iterator[Path]:
    """A short folder for the store, the config, and a control socket nobody serves."""
    path = Path(tempfile.mkdtemp(prefix="wsa", dir="/tmp"))
    (path / "w.toml").write_text(f'[store]\nurl = "sqlite:///{path / "w.db"}"\n'
                                 f'[control]\nsocket = "{path / "control.sock"}"\nsocket_group = "root"\n')
    yield path
    shutil.rmtree(path, ignore_errors=True)


def fill(site: Path, clock: Any, n: int = 6) -> None:
    store = open_store(f"sqlite:///{site / 'w.db'}")
    log = AuditLog(store, clock)
    for i in range(1, n + 1):
        log.append(f"uid:{1000 + i}:op", "suggestion.approve", f"suggestion:{i}", {"n": i})
    log.append(HOSTILE, f"guard.{HOSTILE}", HOSTILE, {"text": HOSTILE})
    store.close()


def run(capsys: pytest.CaptureFixture[str], site: Path, *argv: str) -> tuple[int, str, str]:
    """The CLI through main() once cli.py registers `audit`, else through a parser of our own."""
    args = [*argv, "--config", str(site / "w.toml")]
    if "audit" in cli.build_parser()._subparsers._group_actions[0].choices:  # type: ignore[union-attr]
        code = cli.main(args)
    else:
        parser = argparse.ArgumentParser(parents=[cli.common_parent(suppress=False)])
        sub = parser.add_subparsers(dest="command", required=True)
        cli_audit.register(sub, cli.common_parent())
        ns = parser.parse_args(args)
        ctx = Context(config_path=ns.config)
        try:
            code = ns.handler(ns, ctx)
        except WatchstanderError as err:
            print(f"error: {err}")
            code = err.exit_status
        finally:
            ctx.close()
    out, err = capsys.readouterr()
    return code, out, err


def tamper(site: Path, *sql: str) -> None:
    with sqlite3.connect(site / "w.db") as conn:
        for statement in sql:
            conn.execute(statement)


def test_an_intact_log_verifies(capsys, site, clock) -> None:  # type: ignore[no-untyped-def]
    fill(site, clock)
    assert run(capsys, site, "audit", "verify")[:2] == (0, "ok: 7 records\n")
    code, out, _ = run(capsys, site, "audit", "verify", "--format", "json")
    assert code == 0 and json.loads(out) == {"ok": True, "checked": 7, "broken_seq": None, "reason": None}


@pytest.mark.parametrize(("sql", "broken", "why"), [
    (["UPDATE audit_log SET actor = 'uid:0:root' WHERE seq = 3"], 3, "content does not match its hash"),
    (["UPDATE audit_log SET data = '{\"n\":99}' WHERE seq = 5"], 5, "content does not match its hash"),
    (["DELETE FROM audit_log WHERE seq = 4"], 4, "record 4 is missing"),
    (["DELETE FROM audit_log WHERE seq = 7"], 7, "chain head says record 7"),
    # Reorder: records 2 and 3 swap places (contents move, sequence numbers stay).
    (["UPDATE audit_log SET seq = -2 WHERE seq = 2", "UPDATE audit_log SET seq = 2 WHERE seq = 3",
      "UPDATE audit_log SET seq = 3 WHERE seq = -2"], 2, "previous-hash link does not match"),
])
def test_verify_names_the_first_broken_record(capsys, site, clock, sql, broken, why) -> None:  # type: ignore[no-untyped-def]
    fill(site, clock)
    tamper(site, *sql)
    code, out, _ = run(capsys, site, "audit", "verify")
    assert code == cli_audit.EXIT_AUDIT_BROKEN == 12
    assert out.startswith(f"broken: record {broken}: ") and why in out


def test_export_jsonl_parses_back_record_for_record(capsys, site, clock) -> None:  # type: ignore[no-untyped-def]
    fill(site, clock)
    code, out, _ = run(capsys, site, "audit", "export")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 7
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == list(range(1, 8))
    assert set(records[0]) == {"seq", "time", "actor", "action", "subject", "data", "prev_hash", "hash"}
    assert records[6]["actor"] == HOSTILE and records[6]["data"] == {"text": HOSTILE}
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(records, records[1:]))


def test_export_since_and_out_file(capsys, site, clock) -> None:  # type: ignore[no-untyped-def]
    fill(site, clock)
    tamper(site, "UPDATE audit_log SET time = '2020-01-01T00:00:00+00:00' WHERE seq <= 2")
    target = site / "out.jsonl"
    code, _, err = run(capsys, site, "audit", "export", "--since", "2026-01-01", "--out", str(target))
    assert code == 0 and "5 records written" in err
    assert [json.loads(x)["seq"] for x in target.read_text().splitlines()] == [3, 4, 5, 6, 7]
    assert run(capsys, site, "audit", "export", "--since", "yesterday")[0] == 4


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), value)


def test_export_cef_lines_are_valid_and_escape_hostile_text(capsys, site, clock) -> None:  # type: ignore[no-untyped-def]
    fill(site, clock)
    code, out, _ = run(capsys, site, "audit", "export", "--format", "cef")
    lines = out.split("\n")[:-1]
    assert code == 0 and len(lines) == 7  # a newline inside a record never splits it
    for line in lines:
        m = CEF.match(line)
        assert m, line
        pairs = dict(EXT_PAIR.findall(m["ext"]))
        assert {"rt", "externalId", "suser", "act", "cs1", "cs2", "cs3", "cs4"} <= pairs.keys()
    hostile = lines[6]
    header = re.split(r"(?<!\\)\|", hostile)
    assert header[4] == "guard.pipe\\|back\\\\slash=equals new line"  # header: | and \ escaped, breaks blanked
    ext = dict(EXT_PAIR.findall(CEF.match(hostile)["ext"]))  # type: ignore[index]
    assert ext["suser"] == "pipe|back\\\\slash\\=equals\\nnew\\rline"
    assert unescape(ext["suser"]) == HOSTILE and unescape(ext["cs1"]) == HOSTILE
    assert json.loads(unescape(ext["cs2"])) == {"text": HOSTILE}
    assert ext["externalId"] == "7"


def test_through_a_running_daemon_the_same_output(capsys, site, clock) -> None:  # type: ignore[no-untyped-def]
    from watchstander.agent.app.wiring import App
    from watchstander.agent.config.load import load_config
    from watchstander.agent.control.wiring import build_control_server

    fill(site, clock)
    config = load_config(site / "w.toml")
    store = open_store(config.store.resolved_url())
    server = build_control_server(App(config, store, clock))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        assert (site / "control.sock").exists()
        assert run(capsys, site, "audit", "verify")[:2] == (0, "ok: 7 records\n")
        code, out, _ = run(capsys, site, "audit", "export")
        assert code == 0 and [json.loads(x)["seq"] for x in out.splitlines()] == list(range(1, 8))
        tamper(site, "DELETE FROM audit_log WHERE seq = 4")
        code, out, _ = run(capsys, site, "audit", "verify")
        assert code == 12 and out.startswith("broken: record 4: ")
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        store.close()
