"""Checkpoint file and store rows that drift apart, junk rows, long unsealed stretches, rotated keys.

On SQLite and (marked postgres) on a real PostgreSQL, through `store_url`. A database writer (the
tests' raw SQL) holds no node's key; a lost file line is a write that did not happen (ENOSPC, a
crash after the commit); a failed commit is a commit the database refused.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, select, update

from watchstander.agent.cli import main as cli
from watchstander.agent.clock import system_clock
from watchstander.agent.store import seal as seal_module
from watchstander.agent.store.audit import AuditLog, audit_checkpoints, audit_head, audit_log, record_hash
from watchstander.agent.store.engine import Store
from watchstander.agent.store.schema import open_store
from watchstander.agent.store.seal import (
    MAX_LINE,
    SealedResult,
    Sealer,
    SealPaths,
    key_id,
    load_or_create_signing_key,
    load_public_key,
    parse_line,
    read_checkpoints,
    verify_sealed,
    write_public_key,
)

pytestmark = pytest.mark.integration


class Node:
    """One agent with its own key and checkpoint file on the shared store."""

    def __init__(self, root: Path, url: str, name: str, every: int = 64) -> None:
        folder = root / name
        folder.mkdir()
        self.paths = SealPaths(folder / "seal.key", folder / "seal.pub", folder / "checkpoints.jsonl")
        write_public_key(load_or_create_signing_key(self.paths.signing_key), self.paths.public_key)
        self.key = key_id(load_public_key(self.paths.public_key))
        self.store: Store = open_store(url)
        self.every = every
        self.trusted: tuple[Path, ...] = ()
        self.log = AuditLog(self.store, system_clock, Sealer(self.paths, every, system_clock))

    def trust(self, *others: Node) -> Node:
        self.trusted = tuple(o.paths.public_key for o in others)
        self.log = AuditLog(self.store, system_clock, Sealer(self.paths, self.every, system_clock, self.trusted))
        return self

    def file_seqs(self) -> list[int]:
        """The checkpoints of this node's file that verify; the file must have no bad line."""
        read = read_checkpoints(self.paths.checkpoints, load_public_key(self.paths.public_key))
        assert read.bad_line is None, read.reason
        return [cp.seq for cp in read.valid]

    def rows(self) -> list[str]:
        with self.store.engine.connect() as conn:
            return list(conn.execute(select(audit_checkpoints.c.line).where(audit_checkpoints.c.key == self.key)
                                     .order_by(audit_checkpoints.c.seq)).scalars())

    def verify(self) -> SealedResult:
        return verify_sealed(self.log, self.store, self.paths.checkpoints, load_public_key(self.paths.public_key),
                             [load_public_key(p) for p in self.trusted])

    def record(self, n: int, action: str = "triage.verdict") -> list[int]:
        return [self.log.append("watchstander", action, f"i:{i}", {}).seq for i in range(n)]


@pytest.fixture
def node(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Node:
    n = Node(tmp_path, store_url, "a", every=3)
    request.addfinalizer(n.store.close)
    return n


# ---------------------------------------------------------------- 1. a junk row does not fork the chain

def test_a_junk_row_ahead_of_the_chain_is_skipped_never_a_base(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    node.record(3)
    with node.store.begin() as conn:  # the database writer: this node's key id, a seq ahead, no signature
        conn.execute(audit_checkpoints.insert().values(key=node.key, seq=5, head="x", time="t", prev="p",
                                                       unvouched="[]", sig="s", line="junk"))
    with caplog.at_level(logging.WARNING):
        node.record(9)
    assert node.file_seqs() == [3, 6, 9, 12]  # one chain, every line verifies
    assert [json.loads(line)["seq"] for line in node.rows() if line != "junk"] == [3, 6, 9, 12]
    assert not [r for r in caplog.records if "copied" in r.getMessage()]
    fresh = AuditLog(node.store, system_clock, Sealer(node.paths, 3, system_clock))
    assert node.log.is_sealed(7) and fresh.is_sealed(7) and fresh.is_sealed(12)
    result = node.verify()  # the junk row is reported, and nothing else
    assert not result.ok and result.broken_seq == 4
    assert f"checkpoint of key {node.key} in the store for record 5: not JSON" in (result.reason or "")
    assert result.sealed_through == 12
    with node.store.begin() as conn:
        conn.execute(audit_checkpoints.delete().where(audit_checkpoints.c.line == "junk"))
    assert node.verify().ok


def test_a_garbled_row_in_the_middle_is_put_right_from_the_file(node: Node) -> None:
    node.record(9)
    with node.store.begin() as conn:
        conn.execute(update(audit_checkpoints).where(audit_checkpoints.c.key == node.key,
                                                     audit_checkpoints.c.seq == 6).values(line="garbled"))
    assert not node.verify().ok  # the rows after it no longer chain
    node.record(3)
    assert node.file_seqs() == [3, 6, 9, 12]
    assert node.log.is_sealed(8) and node.verify().ok


# ---------------------------------------------------------------- 2. file and store never drift for good

def test_a_lost_file_line_is_appended_at_the_next_seal(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    node.log.append("a", "suggestion.create", "suggestion:1", {})
    with monkeypatch.context() as m:
        m.setattr(Sealer, "write", lambda self, cp: None)  # committed, but the append never happened
        node.log.append("a", "suggestion.create", "suggestion:2", {})
    assert node.file_seqs() == [1] and len(node.rows()) == 2
    result = node.verify()  # a prefix of the signed rows: accepted, with a note
    assert result.ok, result.reason
    assert any("appended to the file at its next seal" in n for n in result.notes)
    approval = node.log.append("alice", "suggestion.approve", "suggestion:2", {"approver": "alice"}).seq
    assert node.file_seqs() == [1, 2, 3]
    assert node.log.is_sealed(approval) and node.verify().ok and not node.verify().notes


def test_a_commit_that_fails_leaves_no_line_in_the_file(node: Node) -> None:
    node.log.append("a", "suggestion.create", "suggestion:1", {})

    def refuse(_conn: object) -> None:
        raise ConnectionError("server closed the connection at COMMIT")

    event.listen(node.store.engine, "commit", refuse)
    try:
        with pytest.raises(ConnectionError):
            node.log.append("a", "suggestion.create", "suggestion:2", {})
    finally:
        event.remove(node.store.engine, "commit", refuse)
    assert node.file_seqs() == [1] and len(node.rows()) == 1
    node.log.append("a", "suggestion.create", "suggestion:2b", {})
    approval = node.log.append("alice", "suggestion.approve", "suggestion:2b", {"approver": "alice"}).seq
    assert node.file_seqs() == [1, 2, 3]
    assert node.log.is_sealed(approval) and node.verify().ok


def test_a_rolled_back_transaction_writes_nothing_and_two_sealers_write_each_line_once(node: Node) -> None:
    with pytest.raises(RuntimeError), node.store.begin() as conn:
        node.log.append("a", "suggestion.create", "suggestion:1", {}, conn=conn)
        raise RuntimeError("the caller's change failed")
    assert not node.paths.checkpoints.exists() or node.file_seqs() == []
    other = AuditLog(node.store, system_clock, Sealer(node.paths, 3, system_clock))  # the CLI, same key
    for i in range(4):
        (node.log if i % 2 else other).append("a", "suggestion.create", f"suggestion:{i}", {})
    assert node.file_seqs() == [1, 2, 3, 4] and node.verify().ok


# ---------------------------------------------------------------- 3. a long unsealed stretch

def forge_many(store: Store, n: int, action: str = "suggestion.approve") -> range:
    """What a database writer (or a node this one does not hear from) leaves: `n` chained records at once."""
    with store.begin() as conn:
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
        prev, when, rows = head.hash, datetime.now(UTC).isoformat(), []
        for seq in range(head.seq + 1, head.seq + n + 1):
            digest = record_hash(seq, when, "x", action, f"suggestion:{seq}", "{}", prev)
            rows.append({"seq": seq, "time": when, "actor": "x", "action": action, "subject": f"suggestion:{seq}",
                         "data": "{}", "prev_hash": prev, "hash": digest})
            prev = digest
        conn.execute(audit_log.insert(), rows)
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=head.seq + n, hash=prev))
    return range(head.seq + 1, head.seq + n + 1)


def test_a_long_stretch_is_split_into_bounded_checkpoints(store_url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          request: pytest.FixtureRequest) -> None:
    monkeypatch.setattr(seal_module, "MAX_UNVOUCHED", 5)
    a, b = Node(tmp_path, store_url, "a", every=1000), Node(tmp_path, store_url, "b", every=1000)
    for n in (a, b):
        request.addfinalizer(n.store.close)
    a.trust(b)
    b.trust(a)
    by_b = [b.log.append("bob", "suggestion.approve", f"suggestion:{i}", {"approver": "bob"}).seq for i in range(12)]
    forged = forge_many(a.store, 3)
    mine = a.log.append("alice", "suggestion.approve", "suggestion:99", {"approver": "alice"}).seq
    lines = [parse_line(line) for line in a.rows()]
    assert [len(cp.unvouched) for cp in lines] == [5, 5, 5, 0]
    assert [u for cp in lines for u in cp.unvouched] == [*by_b, *forged]
    assert a.file_seqs() == [cp.seq for cp in lines] and lines[-1].seq == mine
    assert all(a.log.is_sealed(s) for s in by_b) and a.log.is_sealed(mine)
    assert not any(a.log.is_sealed(s) or b.log.is_sealed(s) for s in forged)
    result = a.verify()
    assert not result.ok and result.broken_seq == forged[0] and "not sealed when written" in (result.reason or "")


@pytest.mark.slow
def test_a_stretch_longer_than_one_line_holds_is_sealed_in_lines_the_parser_accepts(node: Node) -> None:
    node.record(1)
    forged = forge_many(node.store, 150_000)
    node.log.append("alice", "suggestion.approve", "suggestion:1", {"approver": "alice"})
    lines = node.rows()
    assert len(lines) == 16 and max(map(len, lines)) < MAX_LINE
    assert [u for line in lines for u in parse_line(line).unvouched] == list(forged)
    assert node.file_seqs()[-1] == forged[-1] + 1
    assert not node.log.is_sealed(forged[-1]) and node.log.is_sealed(forged[-1] + 1)


# ---------------------------------------------------------------- 4. `audit key` after a key rotation

def test_audit_key_prints_the_signing_keys_key_after_a_rotation(node: Node, store_url: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    old = node.key
    node.paths.signing_key.unlink()  # rotated: a new signing key, the old .pub left behind
    new = key_id(load_or_create_signing_key(node.paths.signing_key).public_key())
    sock = Path(tempfile.mkdtemp(prefix="wsk", dir="/tmp"))
    config = node.paths.public_key.with_name("w.toml")
    config.write_text(f'[store]\nurl = "{store_url}"\n[control]\nsocket = "{sock / "a.sock"}"\n'
                      f'socket_group = "root"\n[audit]\nsigning_key = "{node.paths.signing_key}"\n'
                      f'public_key = "{node.paths.public_key}"\ncheckpoints = "{node.paths.checkpoints}"\n',
                      encoding="utf-8")
    try:
        assert cli.main(["audit", "key", "--config", str(config)]) == 0
        out, err = capsys.readouterr()
        assert key_id(seal_module.parse_public_key(out.encode())) == new != old
        assert f"key id {new}" in err and f"holds key {old}" in err and "stale" in err
        node.record(3)  # the sealer's first use of the new key replaces the stale .pub
        assert key_id(load_public_key(node.paths.public_key)) == new
        assert cli.main(["audit", "key", "--config", str(config)]) == 0
        assert "warning" not in capsys.readouterr().err
    finally:
        shutil.rmtree(sock, ignore_errors=True)
