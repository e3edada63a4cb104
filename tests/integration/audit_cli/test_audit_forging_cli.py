"""`watchstander audit verify|export` against a forged store, an out-of-range --since and hostile text."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from watchstander.agent.cli import main as cli
from watchstander.agent.config.audit import AuditConfig
from watchstander.agent.store.audit import GENESIS, AuditLog, canonical, record_hash
from watchstander.agent.store.schema import open_store
from watchstander.agent.store.seal import Sealer, seal_paths

pytestmark = pytest.mark.integration

# Clear screen, window title, CSI via C1, hidden text, a right-to-left override, a line separator.
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x9b8m\u202egnp.exe\u2028\u200bend"


@pytest.fixture
def site() -> Iterator[Path]:
    """A short folder for the store, the config, and a control socket nobody serves."""
    path = Path(tempfile.mkdtemp(prefix="wsf", dir="/tmp"))
    (path / "w.toml").write_text(f'[store]\nurl = "sqlite:///{path / "w.db"}"\n'
                                 f'[control]\nsocket = "{path / "control.sock"}"\nsocket_group = "root"\n')
    yield path
    shutil.rmtree(path, ignore_errors=True)


def fill(site: Path, clock: Any) -> None:
    """Six records sealed one by one with the default key and checkpoint paths next to the store."""
    url = f"sqlite:///{site / 'w.db'}"
    store = open_store(url)
    log = AuditLog(store, clock, Sealer.from_config(AuditConfig(seal_every=1), url, clock))
    log.append("watchstander:triage", "suggestion.create", "suggestion:1", {"params": {"ip": "203.0.113.7"}})
    for i in range(2, 6):
        log.append(f"uid:{1000 + i}:op", "suggestion.approve", "suggestion:1", {"n": i})
    log.append(HOSTILE, f"guard.{HOSTILE}", HOSTILE, {"text": HOSTILE})
    store.close()


def run(capsys: pytest.CaptureFixture[str], site: Path, *argv: str) -> tuple[int, str, str]:
    code = cli.main([*argv, "--config", str(site / "w.toml")])
    out, err = capsys.readouterr()
    return code, out, err


def rewrite_and_rechain(db: Path, seq: int, data: dict[str, Any]) -> None:
    """What a database writer would do, with the audit module's own functions."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_log SET data = ? WHERE seq = ?", (canonical(data), seq))
        prev = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", (seq - 1,)).fetchone()
        prev = prev[0] if prev else GENESIS
        for s, t, actor, action, subject, body in conn.execute(
                "SELECT seq, time, actor, action, subject, data FROM audit_log WHERE seq >= ? ORDER BY seq",
                (seq,)).fetchall():
            digest = record_hash(s, t, actor, action, subject, body, prev)
            conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, s))
            prev = digest
        conn.execute("UPDATE audit_head SET hash = ? WHERE id = 1", (prev,))


def test_verify_reports_checkpoints_and_names_a_rechained_forgery(capsys, site, clock) -> None:  # type: ignore[no-untyped-def]
    fill(site, clock)
    code, out, _ = run(capsys, site, "audit", "verify")
    assert code == 0 and out.startswith("ok: 6 records\ncheckpoints: 6 signed by key ")
    assert "sealed through record 6" in out
    rewrite_and_rechain(site / "w.db", 3, {"n": 3, "approver": "uid:1003:mallory"})
    code, out, _ = run(capsys, site, "audit", "verify")
    assert code == 12 and out.startswith("broken: record 3: ")
    code, out, _ = run(capsys, site, "audit", "verify", "--format", "json")
    result = json.loads(out)
    assert code == 12 and result["broken_seq"] == 3 and result["sealing"] is True and result["checkpoints"] == 6


def test_verify_with_the_auditors_public_key(capsys, site, clock) -> None:  # type: ignore[no-untyped-def]
    fill(site, clock)
    paths = seal_paths(AuditConfig(), f"sqlite:///{site / 'w.db'}")
    copy = site / "auditor.pub"
    shutil.copy(paths.public_key, copy)
    assert run(capsys, site, "audit", "verify", "--public-key", str(copy))[0] == 0
    other = site / "other.pub"
    other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    code, out, _ = run(capsys, site, "audit", "verify", "--public-key", str(other))
    assert code == 12 and "broken: record 1: " in out and "signed by key" in out
    assert run(capsys, site, "audit", "verify", "--public-key", str(site / "missing.pub"))[0] == 4


def test_verify_without_a_key_says_only_the_unkeyed_chain_was_checked(capsys, site, clock) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{site / 'w.db'}")
    AuditLog(store, clock).append("someone", "triage.verdict", "incident:1", {})
    store.close()
    code, out, err = run(capsys, site, "audit", "verify")
    assert code == 0 and out == "ok: 1 records\n" and "not sealed" in err


def test_export_since_out_of_range_is_a_clear_error(capsys, site, clock) -> None:  # type: ignore[no-untyped-def]
    fill(site, clock)
    for since in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
        with pytest.raises(SystemExit) as exited:  # argparse rejects it before the command runs
            run(capsys, site, "audit", "export", "--since", since)
        err = capsys.readouterr().err
        assert exited.value.code == 2 and "out of range" in err and "Traceback" not in err


def _no_controls(text: str) -> bool:
    return not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") for ch in text)


def test_exports_carry_control_and_format_characters_escaped(capsys, site, clock) -> None:  # type: ignore[no-untyped-def]
    fill(site, clock)
    code, out, _ = run(capsys, site, "audit", "export")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 6 and out.isascii() and all(_no_controls(x) for x in lines)
    assert json.loads(lines[-1])["actor"] == HOSTILE  # escaped, not lost
    code, out, _ = run(capsys, site, "audit", "export", "--format", "cef")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 6 and all(_no_controls(x) for x in lines)
    assert "suser=\\x1b[2J\\x1b]0;pwned\\x07\\x9b8m\\u202egnp.exe\\u2028\\u200bend" in lines[-1]
    assert "\\u202e" in lines[-1].split("|")[4]  # the header (name) too
