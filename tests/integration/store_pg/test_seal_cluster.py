"""Signed checkpoints when several nodes share one store, on SQLite and on a real PostgreSQL.

Each "node" has its own signing key and checkpoint file, and trusts the keys it is given, as
separate hosts would; they share one store URL. A database writer (the tests' raw SQL) can
insert, rewrite and delete rows but holds no node's key.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from support.pg_cluster import collect, spawn, write_library
from support.seal_cluster import node_worker, sealed_queue

from watchstander.agent.cli import main as cli
from watchstander.agent.clock import system_clock
from watchstander.agent.config.policy import PolicyConfig
from watchstander.agent.models import RecommendedAction
from watchstander.agent.policy.errors import ParametersTampered
from watchstander.agent.policy.guard import PolicyGuard
from watchstander.agent.policy.review import ReviewQueue
from watchstander.agent.store.approvals import ApprovalStore
from watchstander.agent.store.audit import AuditLog, audit_checkpoints, audit_head, audit_log, canonical, record_hash
from watchstander.agent.store.engine import Store
from watchstander.agent.store.schema import open_store
from watchstander.agent.store.seal import (
    SealedResult,
    Sealer,
    SealPaths,
    key_id,
    load_or_create_signing_key,
    load_public_key,
    verify_sealed,
    write_public_key,
)
from watchstander.playbooks import load_library

pytestmark = pytest.mark.integration


class Node:
    """One agent: its own key and checkpoint file, the shared store, and the keys it trusts."""

    def __init__(self, root: Path, url: str, name: str) -> None:
        folder = root / name
        folder.mkdir()
        self.name = name
        self.paths = SealPaths(folder / "seal.key", folder / "seal.pub", folder / "checkpoints.jsonl")
        write_public_key(load_or_create_signing_key(self.paths.signing_key), self.paths.public_key)
        self.key = key_id(load_public_key(self.paths.public_key))
        self.store: Store = open_store(url)
        self.trusted: tuple[Path, ...] = ()
        self.log = AuditLog(self.store, system_clock, Sealer(self.paths, 64, system_clock))

    def trust(self, *others: Node) -> Node:
        """Trust the others' public keys (as `[audit] trusted_keys` would), with a fresh sealer."""
        self.trusted = tuple(o.paths.public_key for o in others)
        self.log = AuditLog(self.store, system_clock, Sealer(self.paths, 64, system_clock, self.trusted))
        return self

    def sealed(self, seq: int) -> bool:
        """The review queue's question, asked of this node's long-lived log and of a fresh process's."""
        fresh = AuditLog(self.store, system_clock, Sealer(self.paths, 64, system_clock, self.trusted)).is_sealed(seq)
        cached = self.log.is_sealed(seq)
        assert fresh == cached, f"{self.name}: record {seq} sealed {cached} (cached) but {fresh} (fresh)"
        return cached

    def verify(self) -> SealedResult:
        return verify_sealed(self.log, self.store, self.paths.checkpoints, load_public_key(self.paths.public_key),
                             [load_public_key(p) for p in self.trusted])

    def approve(self, who: str, suggestion: int = 1) -> int:
        return self.log.append(who, "suggestion.approve", f"suggestion:{suggestion}", {"approver": who}).seq


@pytest.fixture
def nodes(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Node, Node, Node]:
    """A and B trust each other; C trusts only B."""
    a, b, c = (Node(tmp_path, store_url, name) for name in ("a", "b", "c"))
    for n in (a, b, c):
        request.addfinalizer(n.store.close)
    return a.trust(b), b.trust(a), c.trust(b)


def forge_append(store: Store, actor: str, action: str, subject: str, data: dict[str, object]) -> int:
    """What a database writer can do: append a record and move the head, with the module's own hash."""
    with store.begin() as conn:
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
        seq, when, body = head.seq + 1, datetime.now(UTC).isoformat(), canonical(data)
        digest = record_hash(seq, when, actor, action, subject, body, head.hash)
        conn.execute(audit_log.insert().values(seq=seq, time=when, actor=actor, action=action, subject=subject,
                                               data=body, prev_hash=head.hash, hash=digest))
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest))
    return seq


def rewrite_and_rechain(store: Store, seq: int, data: dict[str, object]) -> None:
    """Edit record `seq` and recompute every hash from it on, so that the unkeyed chain still verifies."""
    with store.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(data=canonical(data)))
        prev = conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == seq - 1)).scalar_one()
        for row in conn.execute(select(audit_log).where(audit_log.c.seq >= seq).order_by(audit_log.c.seq)).all():
            digest = record_hash(row.seq, row.time, row.actor, row.action, row.subject, row.data, prev)
            conn.execute(update(audit_log).where(audit_log.c.seq == row.seq).values(prev_hash=prev, hash=digest))
            prev = digest
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(hash=prev))


def rows_of(store: Store, key: str) -> list[dict[str, object]]:
    with store.engine.connect() as conn:
        return [json.loads(line) for line in conn.execute(
            select(audit_checkpoints.c.line).where(audit_checkpoints.c.key == key)
            .order_by(audit_checkpoints.c.seq)).scalars()]


def test_an_approval_sealed_on_one_node_is_sealed_for_the_nodes_that_trust_it(nodes: tuple[Node, Node, Node]) -> None:
    a, b, _c = nodes
    created = a.log.append("watchstander:triage", "suggestion.create", "suggestion:1", {"playbook": "p"}).seq
    by_a = a.approve("uid:1002:bob")
    by_b = b.approve("uid:1003:carol")  # B's checkpoint covers A's records: it did not witness them
    assert rows_of(b.store, b.key)[-1]["unvouched"] == [created, by_a]
    assert all(n.sealed(s) for n in (a, b) for s in (created, by_a, by_b))
    for n in (a, b):
        result = n.verify()
        assert result.ok and result.sealed_through == by_b and result.unsealed == (), result
        assert {(s.key, s.checkpoints, s.sealed_through) for s in result.signers} == {
            (a.key, 2, by_a), (b.key, 1, by_b)}
        assert result.untrusted == ()
    # Each signer's rows are its file's lines, one chain per key.
    assert [json.loads(x) for x in a.paths.checkpoints.read_text().splitlines()] == rows_of(a.store, a.key)


def test_a_record_forged_into_the_store_is_refused_by_every_node(nodes: tuple[Node, Node, Node]) -> None:
    a, b, _c = nodes
    a.log.append("watchstander:triage", "suggestion.create", "suggestion:1", {"playbook": "p"})
    a.approve("uid:1002:bob")
    forged = forge_append(a.store, "uid:1003:mallory", "suggestion.approve", "suggestion:1",
                          {"approver": "uid:1003:mallory"})
    assert a.log.verify().ok  # the unkeyed chain is fooled
    assert not a.sealed(forged) and not b.sealed(forged)
    b.approve("uid:1004:dave")  # B seals past it and says it never wrote it; so does A's next seal
    a.approve("uid:1005:erin")
    assert not a.sealed(forged) and not b.sealed(forged)
    for n in (a, b):
        result = n.verify()
        assert not result.ok and result.broken_seq == forged and "not sealed when written" in (result.reason or "")


def test_a_rewritten_approval_is_refused_by_every_node(nodes: tuple[Node, Node, Node]) -> None:
    a, b, _c = nodes
    a.log.append("watchstander:triage", "suggestion.create", "suggestion:1", {"playbook": "p"})  # sealed at once
    by_a = a.approve("uid:1002:bob")
    b.approve("uid:1003:carol")
    rewrite_and_rechain(a.store, by_a, {"approver": "uid:1006:mallory"})
    assert a.log.verify().ok
    assert not a.sealed(by_a) and not b.sealed(by_a)
    assert b.verify().broken_seq == by_a and a.verify().broken_seq == by_a


def test_a_node_that_does_not_trust_a_key_refuses_its_approvals_and_names_the_key(
        nodes: tuple[Node, Node, Node]) -> None:
    a, b, c = nodes
    by_a = a.approve("uid:1002:bob")
    by_b = b.approve("uid:1003:carol")
    assert c.sealed(by_b) and not c.sealed(by_a) and b.sealed(by_a)
    why = c.log.why_unsealed(by_a)
    assert a.key in why and "trusted_keys" in why and f"trusted key {b.key} did not witness it" in why, why
    result = c.verify()  # B's checkpoint says it did not witness A's approval; A's is not believed here
    assert not result.ok and result.broken_seq == by_a and a.key in (result.reason or "")
    assert result.untrusted == ((a.key, 1),)


def test_deleting_a_nodes_checkpoint_rows_unseals_its_approvals_until_it_restores_them(
        nodes: tuple[Node, Node, Node]) -> None:
    a, b, _c = nodes
    by_a = a.approve("uid:1002:bob")
    b.log.append("watchstander:triage", "triage.verdict", "incident:1", {})  # not a sealed action: no checkpoint
    assert b.sealed(by_a)
    with a.store.begin() as conn:
        conn.execute(audit_checkpoints.delete().where(audit_checkpoints.c.key == a.key))
    assert not b.sealed(by_a)  # fail safe, even for the reader that had already verified the row
    assert a.sealed(by_a)  # A still holds its own copy
    assert b.verify().unsealed == (by_a, by_a + 1)
    notes = a.verify().notes
    assert notes and "none of this node's" in notes[0]
    again = a.approve("uid:1003:carol")  # A's next seal copies its file's lines back first
    assert b.sealed(by_a) and b.sealed(again)
    assert [cp["seq"] for cp in rows_of(a.store, a.key)] == [by_a, again]
    assert a.verify().ok and b.verify().ok


def test_a_node_whose_later_rows_were_deleted_is_reported_by_its_own_verify(nodes: tuple[Node, Node, Node]) -> None:
    a, b, _c = nodes
    first = a.approve("uid:1002:bob")
    second = a.approve("uid:1003:carol")
    with a.store.begin() as conn:
        conn.execute(audit_checkpoints.delete().where(audit_checkpoints.c.key == a.key,
                                                      audit_checkpoints.c.seq == second))
    assert b.sealed(first) and not b.sealed(second)
    result = a.verify()
    assert not result.ok and result.broken_seq == second and "deleted from the database" in (result.reason or "")


def test_hostile_rows_in_the_store_are_reported_not_believed(nodes: tuple[Node, Node, Node]) -> None:
    a, b, _c = nodes
    by_a = a.approve("uid:1002:bob")
    with a.store.begin() as conn:
        # A row claiming A's key after its real one: unsigned junk. And rows under made-up keys.
        conn.execute(audit_checkpoints.insert().values(key=a.key, seq=by_a + 5, head="0" * 64, time="t",
                                                       prev="0" * 64, unvouched="[]", sig="", line="{\"seq\":1}"))
        conn.execute(audit_checkpoints.insert().values(key="\x1b[2Jevil", seq=1, head="", time="", prev="",
                                                       unvouched="", sig="", line="not json"))
    assert b.sealed(by_a)  # A's signed row before the junk still counts
    result = b.verify()
    assert not result.ok and f"checkpoint of key {a.key} in the store for record {by_a + 5}" in (result.reason or "")
    assert result.untrusted == (("'\\x1b[2Jevil'", 1),)


# ---------------------------------------------------------------- the review queue across nodes

def _queue(node: Node, library: Path) -> tuple[ReviewQueue, ApprovalStore]:
    approvals = ApprovalStore(node.store, node.log, system_clock)
    cfg = PolicyConfig()
    guard = PolicyGuard(cfg, load_library([library], include_shipped=False), approvals, (), system_clock,
                        store=node.store)
    return ReviewQueue(node.store, node.log, system_clock, cfg, guard=guard), approvals


def test_two_approvals_on_two_nodes_are_claimed_on_a_third(store_url: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    a, b, c, d = (Node(tmp_path, store_url, name) for name in "abcd")
    for n in (a, b, c, d):
        request.addfinalizer(n.store.close)
    a.trust(b, c), b.trust(a, c), c.trust(a, b), d.trust(b, c)  # D does not know A's key
    library = write_library(tmp_path / "library", "high")
    qc, approvals = _queue(c, library)
    for playbook in load_library([library], include_shipped=False):
        approvals.approve_with(playbook, ("test:admin-1", "test:admin-2"), "cluster test")
    action = RecommendedAction(playbook="cluster-pause", parameters={"seconds": 1}, justification="cluster test")
    decision = qc.guard.check_action(action, "operator", rate_limit=False)
    (sug,) = qc.submit(1, [decision], actor="uid:1001:alice").created
    assert _queue(a, library)[0].approve(sug.id, "uid:1002:bob").state == "pending"
    assert _queue(b, library)[0].approve(sug.id, "uid:1003:carol").state == "approved"
    with pytest.raises(ParametersTampered, match=f"not sealed .*{a.key}"):
        _queue(d, library)[0].claim(sug.id, "watchstander:runner-d")
    assert qc.claim(sug.id, "watchstander:runner-c").state == "queued"
    assert c.verify().ok


# ---------------------------------------------------------------- the command line on one node of several

def _config(node: Node, url: str, sock: Path) -> Path:
    keys = ", ".join(f'"{p}"' for p in node.trusted)
    path = node.paths.public_key.with_name("w.toml")
    path.write_text(f'[store]\nurl = "{url}"\n[control]\nsocket = "{sock}"\nsocket_group = "root"\n'
                    f'[audit]\nsigning_key = "{node.paths.signing_key}"\npublic_key = "{node.paths.public_key}"\n'
                    f'checkpoints = "{node.paths.checkpoints}"\ntrusted_keys = [{keys}]\n', encoding="utf-8")
    return path


def test_audit_verify_and_audit_key_on_one_node_of_several(nodes: tuple[Node, Node, Node], store_url: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c = nodes
    by_a = a.approve("uid:1002:bob")
    by_b = b.approve("uid:1003:carol")
    sock = Path(tempfile.mkdtemp(prefix="wsc", dir="/tmp"))
    try:
        code = cli.main(["audit", "verify", "--config", str(_config(b, store_url, sock / "b.sock"))])
        out = capsys.readouterr().out
        assert code == 0, out
        assert out == (f"ok: {by_b} records\ncheckpoints: 1 signed by key {b.key}, sealed through record {by_b}\n"
                       f"checkpoints: 1 signed by trusted key {a.key}, sealed through record {by_a}\n")
        code = cli.main(["audit", "verify", "--config", str(_config(c, store_url, sock / "c.sock"))])
        out = capsys.readouterr().out
        assert code == 12 and out.startswith(f"broken: record {by_a}: ") and a.key in out
        assert f"ignored: 1 checkpoints in the store signed by key {a.key}, which is not in [audit] trusted_keys" in out
        assert cli.main(["audit", "key", "--config", str(_config(a, store_url, sock / "a.sock"))]) == 0
        out, err = capsys.readouterr()
        assert out.encode() == a.paths.public_key.read_bytes() and a.key in err
        missing = Node(a.paths.signing_key.parent.parent, store_url, "fresh")
        missing.store.close()
        missing.paths.public_key.unlink()
        missing.paths.signing_key.unlink()
        assert cli.main(["audit", "key", "--config", str(_config(missing, store_url, sock / "m.sock"))]) == 4
        assert "no audit signing key yet" in capsys.readouterr().err
    finally:
        shutil.rmtree(sock, ignore_errors=True)


@pytest.mark.postgres
def test_approvals_from_two_processes_are_claimed_by_a_third_and_refused_by_a_stranger(
        postgres_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Real processes, one per node, as on separate hosts: A and B approve at once, D (not trusting A), then C claim."""
    a, b, c, d = (Node(tmp_path, postgres_url, name) for name in "abcd")
    for n in (a, b, c, d):
        request.addfinalizer(n.store.close)
    library = write_library(tmp_path / "library", "high")
    qc, approvals = sealed_queue(c.store, c.paths.signing_key.parent, (), library)
    for playbook in load_library([library], include_shipped=False):
        approvals.approve_with(playbook, ("test:admin-1", "test:admin-2"), "cluster test")
    action = RecommendedAction(playbook="cluster-pause", parameters={"seconds": 1}, justification="cluster test")
    (sug,) = qc.submit(1, [qc.guard.check_action(action, "operator", rate_limit=False)],
                       actor="uid:1001:alice").created
    ctx = spawn()

    def run(jobs: list[tuple[Node, tuple[Node, ...], str, str]]) -> dict[str, tuple[str, str]]:
        go, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=node_worker, args=(
            postgres_url, str(n.paths.signing_key.parent), [str(t.paths.public_key) for t in trusted], str(library),
            what, sug.id, actor, go, out)) for n, trusted, what, actor in jobs]
        for proc in procs:
            proc.start()
        assert [m[1] for m in collect(out, len(jobs))] == ["ready"] * len(jobs)
        go.set()
        results = collect(out, len(jobs))
        for proc in procs:
            proc.join(60)
        return {Path(folder).name: (outcome, detail) for folder, outcome, detail in results}

    approved = run([(a, (b, c), "approve", "uid:1002:bob"), (b, (a, c), "approve", "uid:1003:carol")])
    assert sorted(approved.values()) == [("done", "approved"), ("done", "pending")], approved
    (outcome, detail), = run([(d, (b, c), "claim", "watchstander:runner-d")]).values()
    assert outcome == "ParametersTampered" and a.key in detail and "trusted_keys" in detail, detail
    assert run([(c, (a, b), "claim", "watchstander:runner-c")]) == {"c": ("done", "queued")}
    c.trust(a, b)
    assert c.verify().ok
