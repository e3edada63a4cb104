"""Forging the audit log as a database writer: edit the SQLite file, re-chain with the module's own
hash functions, and expect the signed checkpoints (kept outside the store) to expose it.

Each attack first shows that the unkeyed chain is fooled (`AuditLog.verify()` says ok: that was the
whole defence before checkpoints), then that `verify_sealed` names the first record it cannot vouch for.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from watchstander.agent.store.audit import GENESIS, AuditLog, canonical, record_hash
from watchstander.agent.store.engine import Store
from watchstander.agent.store.schema import open_store
from watchstander.agent.store.seal import (
    Checkpoint,
    CheckpointReader,
    SealError,
    SealPaths,
    Sealer,
    SealedResult,
    key_id,
    line_digest,
    load_or_create_signing_key,
    load_public_key,
    parse_public_key,
    record_is_sealed,
    verify_sealed,
    write_public_key,
)

pytestmark = pytest.mark.integration


class Site:
    """A store, its sealer and the paths an auditor and an attacker would use."""

    def __init__(self, root: Path, clock: Callable[[], object], every: int = 1) -> None:
        self.db = root / "w.db"
        self.paths = SealPaths(root / "seal.key", root / "seal.pub", root / "checkpoints.jsonl")
        self.store: Store = open_store(f"sqlite:///{self.db}")
        self.log = AuditLog(self.store, clock, Sealer(self.paths, every, clock))  # type: ignore[arg-type]

    def verify(self, public_pem: bytes | None = None) -> SealedResult:
        public = parse_public_key(public_pem) if public_pem else load_public_key(self.paths.public_key)
        return verify_sealed(self.log, self.store, self.paths.checkpoints, public)

    def sealed(self, seq: int) -> bool:
        with self.store.engine.connect() as conn:
            return record_is_sealed(conn, seq, CheckpointReader(self.paths.checkpoints,
                                                                load_public_key(self.paths.public_key)))

    def checkpoints(self) -> list[dict[str, object]]:
        return [json.loads(x) for x in self.paths.checkpoints.read_text().splitlines()]


def fill(site: Site) -> None:
    """Eight records: a suggestion created (2), approved by two people (4, 6), and verdicts around them."""
    log = site.log
    log.append("watchstander:triage", "triage.verdict", "incident:1", {"verdict": "malicious"})
    log.append("watchstander:triage", "suggestion.create", "suggestion:1",
               {"playbook": "block-ip", "params": {"ip": "203.0.113.7"}})
    log.append("watchstander:triage", "triage.verdict", "incident:2", {"verdict": "benign"})
    log.append("uid:1001:alice", "suggestion.approve", "suggestion:1", {"approver": "uid:1001:alice", "count": 1})
    log.append("watchstander:triage", "triage.verdict", "incident:3", {"verdict": "benign"})
    log.append("uid:1002:bob", "suggestion.approve", "suggestion:1", {"approver": "uid:1002:bob", "count": 2})
    log.append("watchstander:triage", "triage.verdict", "incident:4", {"verdict": "benign"})
    log.append("watchstander:triage", "triage.verdict", "incident:5", {"verdict": "benign"})


# ---------------------------------------------------------------- what an attacker would run

def rechain(db: Path, start: int = 1) -> None:
    """Recompute every hash from `start` on, exactly as audit.py does, and move the head along."""
    with sqlite3.connect(db) as conn:
        prev = GENESIS if start == 1 else conn.execute(
            "SELECT hash FROM audit_log WHERE seq = ?", (start - 1,)).fetchone()[0]
        rows = conn.execute("SELECT seq, time, actor, action, subject, data FROM audit_log "
                            "WHERE seq >= ? ORDER BY seq", (start,)).fetchall()
        for seq, time, actor, action, subject, data in rows:
            digest = record_hash(seq, time, actor, action, subject, data, prev)
            conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, seq))
            prev = digest
        last = conn.execute("SELECT max(seq) FROM audit_log").fetchone()[0] or 0
        conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (last, prev if last else GENESIS))


def insert_record(db: Path, at: int, actor: str, action: str, subject: str, data: dict[str, object]) -> None:
    """Shift every record from `at` on up by one and put a forged one in the gap, then re-chain."""
    with sqlite3.connect(db) as conn:
        for (seq,) in conn.execute("SELECT seq FROM audit_log WHERE seq >= ? ORDER BY seq DESC", (at,)).fetchall():
            conn.execute("UPDATE audit_log SET seq = seq + 1 WHERE seq = ?", (seq,))
        time = conn.execute("SELECT time FROM audit_log WHERE seq = ?", (at - 1,)).fetchone()[0]
        conn.execute("INSERT INTO audit_log (seq, time, actor, action, subject, data, prev_hash, hash) "
                     "VALUES (?, ?, ?, ?, ?, ?, '', '')", (at, time, actor, action, subject, canonical(data)))
    rechain(db, at)


@pytest.fixture
def site(tmp_path: Path, clock) -> Site:  # type: ignore[no-untyped-def]
    s = Site(tmp_path, clock)
    fill(s)
    return s


# ---------------------------------------------------------------- the intact log

def test_a_clean_sealed_chain_verifies_and_every_record_is_vouched_for(site: Site) -> None:
    result = site.verify()
    assert result.ok and result.checked == 8 and result.broken_seq is None
    assert result.checkpoints == 8 and result.sealed_through == 8 and result.unsealed == ()
    assert all(site.sealed(seq) for seq in range(1, 9))
    assert not site.sealed(9)


def test_records_after_the_last_checkpoint_are_listed_as_not_yet_sealed(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    s = Site(tmp_path, clock, every=3)
    fill(s)
    # sealed: 2 (create), 4 and 6 (approvals); 7, 8 wait for the next batch of three
    assert [cp["seq"] for cp in s.checkpoints()] == [2, 4, 6]
    result = s.verify()
    assert result.ok and result.sealed_through == 6 and result.unsealed == (7, 8)
    assert s.sealed(4) and not s.sealed(7)
    s.log.append("watchstander:triage", "triage.verdict", "incident:6", {})
    assert [cp["seq"] for cp in s.checkpoints()] == [2, 4, 6, 9]
    assert s.verify().unsealed == ()


def test_the_key_is_created_0600_with_its_public_half_and_a_readable_key_is_refused(site: Site) -> None:
    assert stat.S_IMODE(os.stat(site.paths.signing_key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(site.paths.checkpoints).st_mode) in (0o644, 0o640, 0o600)
    assert site.paths.public_key.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    os.chmod(site.paths.signing_key, 0o644)
    with pytest.raises(SealError, match="readable by others"):
        load_or_create_signing_key(site.paths.signing_key)


def test_a_rolled_back_append_leaves_no_checkpoint(site: Site) -> None:
    before = len(site.checkpoints())
    with pytest.raises(RuntimeError):
        with site.store.begin() as conn:
            site.log.append("uid:1003:carol", "suggestion.approve", "suggestion:1", {"count": 3}, conn=conn)
            raise RuntimeError("the decision failed after auditing")
    assert len(site.checkpoints()) == before
    assert site.verify().ok


def test_an_approval_and_its_transition_in_one_transaction_make_one_checkpoint(site: Site) -> None:
    with site.store.begin() as conn:
        site.log.append("uid:1003:carol", "suggestion.approve", "suggestion:2", {"count": 1}, conn=conn)
        site.log.append("uid:1003:carol", "suggestion.transition", "suggestion:2", {"to": "pending"}, conn=conn)
    cps = site.checkpoints()
    assert cps[-1]["seq"] == 10 and cps[-2]["seq"] == 8 and cps[-1]["unvouched"] == []
    assert site.verify().ok and site.sealed(9) and site.sealed(10)


# ---------------------------------------------------------------- the attacks

def test_a_rewritten_and_rechained_record_is_named(site: Site) -> None:
    with sqlite3.connect(site.db) as conn:
        conn.execute("UPDATE audit_log SET data = ? WHERE seq = 3", (canonical({"verdict": "malicious"}),))
    rechain(site.db, 3)
    assert site.log.verify().ok  # the unkeyed chain is fooled
    result = site.verify()
    assert not result.ok and result.broken_seq == 3 and "checkpoint" in (result.reason or "")
    assert result.checked == 2


def test_a_rewritten_approval_is_not_honoured(site: Site) -> None:
    with sqlite3.connect(site.db) as conn:
        conn.execute("UPDATE audit_log SET actor = 'uid:1003:mallory', data = ? WHERE seq = 4",
                     (canonical({"approver": "uid:1003:mallory", "count": 1}),))
    rechain(site.db, 4)
    assert site.log.verify().ok
    assert not site.sealed(4) and site.sealed(3)
    assert site.verify().broken_seq == 4


def test_truncating_the_last_records_and_rewriting_the_head_is_named(site: Site) -> None:
    with sqlite3.connect(site.db) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq >= 7")
    rechain(site.db, 7)  # moves the head back to record 6
    assert site.log.verify().ok
    result = site.verify()
    assert not result.ok and result.broken_seq == 7 and "ends at record 6" in (result.reason or "")


def test_a_forged_approval_inserted_and_rechained_is_named(site: Site) -> None:
    insert_record(site.db, 5, "uid:1003:mallory", "suggestion.approve", "suggestion:1",
                  {"approver": "uid:1003:mallory", "count": 2})
    assert site.log.verify().ok
    result = site.verify()
    assert not result.ok and result.broken_seq == 5
    assert not site.sealed(5)


def test_a_forged_approval_appended_after_the_last_checkpoint_is_unsealed_then_flagged(site: Site) -> None:
    with sqlite3.connect(site.db) as conn:
        time = conn.execute("SELECT time FROM audit_log WHERE seq = 8").fetchone()[0]
        conn.execute("INSERT INTO audit_log VALUES (9, ?, 'uid:1003:mallory', 'suggestion.approve', "
                     "'suggestion:1', ?, '', '')", (time, canonical({"approver": "uid:1003:mallory"})))
    rechain(site.db, 9)
    result = site.verify()
    assert result.ok and result.unsealed == (9,)  # not a failure yet, but listed, and
    assert not site.sealed(9)  # the review queue must not honour it
    # The service's next append seals past it, and the checkpoint records that it never wrote record 9.
    site.log.append("watchstander:triage", "triage.verdict", "incident:9", {})
    result = site.verify()
    assert not result.ok and result.broken_seq == 9 and "not sealed when written" in (result.reason or "")
    assert not site.sealed(9) and site.sealed(10)


def test_the_sealer_refuses_to_vouch_for_a_chain_rewritten_since_its_last_checkpoint(
        tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    s = Site(tmp_path, clock, every=100)
    fill(s)  # checkpoints at 2, 4, 6; 7 and 8 unsealed
    with sqlite3.connect(s.db) as conn:
        conn.execute("UPDATE audit_log SET data = '{}' WHERE seq = 7")  # not re-chained: breaks the link
    s.log.append("uid:1001:alice", "suggestion.approve", "suggestion:2", {})
    assert [cp["seq"] for cp in s.checkpoints()] == [2, 4, 6]
    assert s.verify().broken_seq == 7


# ---------------------------------------------------------------- the checkpoint file itself

def test_a_missing_checkpoint_file_is_detected(site: Site) -> None:
    site.paths.checkpoints.unlink()
    result = site.verify()
    assert not result.ok and result.broken_seq == 1 and "no checkpoint file" in (result.reason or "")


@pytest.mark.parametrize("edit", ["head", "drop", "swap"])
def test_an_edited_checkpoint_file_is_detected(site: Site, edit: str) -> None:
    lines = site.paths.checkpoints.read_text().splitlines()
    if edit == "head":  # re-point checkpoint 4 at a re-chained head: the signature no longer verifies
        cp = json.loads(lines[3])
        cp["head"] = "f" * 64
        lines[3] = canonical(cp)
    elif edit == "drop":
        del lines[3]
    else:
        lines[3], lines[4] = lines[4], lines[3]
    site.paths.checkpoints.write_text("\n".join(lines) + "\n")
    result = site.verify()
    assert not result.ok and result.broken_seq == 4 and "line 4" in (result.reason or "")


def test_checkpoints_re_signed_with_a_substituted_key_fail_against_the_auditors_key(site: Site) -> None:
    auditor_copy = site.paths.public_key.read_bytes()
    # The attacker replaces key, public key and checkpoints, re-seals a forged chain with the new key.
    with sqlite3.connect(site.db) as conn:
        conn.execute("UPDATE audit_log SET data = ? WHERE seq = 4", (canonical({"approver": "uid:1003:mallory"}),))
    rechain(site.db, 4)
    for p in (site.paths.signing_key, site.paths.public_key, site.paths.checkpoints):
        p.unlink()
    key = load_or_create_signing_key(site.paths.signing_key)
    write_public_key(key, site.paths.public_key)
    prev, lines = GENESIS, []
    with sqlite3.connect(site.db) as conn:
        for seq, digest in conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq"):
            cp = Checkpoint(seq, digest, "2026-11-27T12:00:00+00:00", key_id(key.public_key()), prev)
            cp = replace(cp, sig=base64.b64encode(key.sign(cp.message())).decode())
            lines.append(cp.line())
            prev = line_digest(cp.line())
    site.paths.checkpoints.write_text("\n".join(lines) + "\n")
    assert site.verify().ok  # the key next to the store vouches for the forgery, but
    result = site.verify(auditor_copy)  # the auditor's own copy of the original key does not
    assert not result.ok and result.broken_seq == 1 and "signed by key" in (result.reason or "")


def test_another_key_is_refused(site: Site) -> None:
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    result = site.verify(other)
    assert not result.ok and result.broken_seq == 1


def test_the_reader_verifies_appended_lines_and_starts_over_after_an_edit(site: Site) -> None:
    reader = CheckpointReader(site.paths.checkpoints, load_public_key(site.paths.public_key))
    assert len(reader.read().valid) == 8
    site.log.append("uid:1003:carol", "suggestion.approve", "suggestion:2", {})
    assert len(reader.read().valid) == 9
    with site.store.engine.connect() as conn:
        assert record_is_sealed(conn, 9, reader)
    lines = site.paths.checkpoints.read_text().splitlines()
    lines[1] = lines[1].replace('"seq":2', '"seq":3')
    site.paths.checkpoints.write_text("\n".join(lines) + "\n")
    result = reader.read()
    assert result.bad_line == 2 and len(result.valid) == 1
    with site.store.engine.connect() as conn:
        assert not record_is_sealed(conn, 9, reader)


def test_the_audit_log_answers_for_the_review_queue(site: Site, clock) -> None:  # type: ignore[no-untyped-def]
    checker = AuditLog(site.store, clock, Sealer(site.paths, 1, clock))  # a fresh process: key not loaded
    assert checker.is_sealed(4) and not checker.is_sealed(9)
    assert AuditLog(site.store, clock).is_sealed(9)  # without a sealer nothing is checked
    with sqlite3.connect(site.db) as conn:
        conn.execute("UPDATE audit_log SET data = '{}' WHERE seq = 6")
    rechain(site.db, 6)
    with site.store.engine.connect() as conn:
        assert checker.is_sealed(5, conn=conn) and not checker.is_sealed(6, conn=conn)
