"""Several agents on one real PostgreSQL: one incident per campaign, two-person approvals, one executor.

Each agent is its own spawned process running the agent's own code (decide, ReviewQueue.approve,
RunService.dispatch) against the same database, as sensors on different hosts would.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.pg_cluster import (
    REQUESTER,
    approve_worker,
    build_queue,
    collect,
    ingest_worker,
    propose,
    runner_worker,
    spawn,
    write_library,
)

from watchstander.agent.clock import system_clock
from watchstander.agent.models import Finding
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.incidents import findings, incidents
from watchstander.agent.store.runs import runs
from watchstander.agent.store.schema import open_store
from watchstander.agent.store.seal import SealPaths, Sealer
from watchstander.agent.store.suggestions import suggestions

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

CAMPAIGNS = 5
FINDINGS_PER_CAMPAIGN = 6
BASE = 1_790_000_000.0


def _finding(campaign: int, j: int) -> Finding:
    start = BASE + campaign * 100_000 + j * 10
    return Finding("portscan", f"Port scan of 10.0.{campaign}.{j}", "medium",
                   {"attacker": f"198.51.100.{campaign + 1}", "victim": f"10.0.{campaign}.{j}"},
                   ("T1046",), start, start + 5, 20 + j)


def _sensor_batches(sensor: int) -> list[list[Finding]]:
    """What one sensor saw: each finding is seen by two of the three sensors, in its own order."""
    seen = [_finding(c, j) for c in range(CAMPAIGNS) for j in range(FINDINGS_PER_CAMPAIGN) if (j + sensor) % 3]
    random.Random(sensor).shuffle(seen)
    return [seen[i:i + 4] for i in range(0, len(seen), 4)]


def test_three_sensors_ingesting_overlapping_findings_make_one_incident_per_campaign(postgres_url: str) -> None:
    open_store(postgres_url).close()
    ctx = spawn()
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=ingest_worker, args=(postgres_url, f"sensor-{i}", _sensor_batches(i), go, out))
             for i in range(3)]
    for p in procs:
        p.start()
    assert sorted(m[1] for m in collect(out, 3)) == ["ready"] * 3
    go.set()
    results = collect(out, 3, timeout=180)
    for p in procs:
        p.join(60)
    assert sorted(m[1] for m in results) == ["done"] * 3, results
    store = open_store(postgres_url, migrate=False)
    try:
        with store.engine.connect() as conn:
            per_entity = Counter(conn.execute(select(incidents.c.entity)).scalars())
            stored = set(conn.execute(select(findings.c.key)).scalars())
            per_incident = Counter(conn.execute(select(findings.c.incident_id)).scalars())
        assert per_entity == {f"attacker:198.51.100.{c + 1}": 1 for c in range(CAMPAIGNS)}
        assert stored == {_finding(c, j).key for c in range(CAMPAIGNS) for j in range(FINDINGS_PER_CAMPAIGN)}
        assert sorted(per_incident.values()) == [FINDINGS_PER_CAMPAIGN] * CAMPAIGNS
        assert AuditLog(store, system_clock).verify().ok
    finally:
        store.close()


def test_twenty_concurrent_approvers_record_exactly_two_approvals(postgres_url: str, tmp_path: Path,
                                                                  request: pytest.FixtureRequest) -> None:
    open_store(postgres_url).close()
    library = write_library(tmp_path / "library", "high")
    own = open_store(postgres_url, migrate=False)
    request.addfinalizer(own.close)
    queue, approvals, audit = build_queue(postgres_url, library, own)
    (sid,) = propose(queue, approvals, library, 1)
    assert queue.get(sid).approvals_required == 2
    ctx = spawn()
    go, out = ctx.Event(), ctx.Queue()
    approvers = [f"uid:{2000 + i}:approver{i}" for i in range(20)]
    procs = [ctx.Process(target=approve_worker, args=(postgres_url, str(library), sid, who, go, out))
             for who in approvers]
    for p in procs:
        p.start()
    assert [m[1] for m in collect(out, 20)] == ["ready"] * 20
    go.set()
    results = collect(out, 20)
    for p in procs:
        p.join(60)
    outcomes = Counter(m[1] for m in results)
    assert not [m for m in results if m[1].startswith("crash")], results
    assert outcomes["approved"] == 2 and outcomes["AlreadyDecided"] == 18, outcomes
    s = queue.get(sid)
    assert s.state == "approved" and len(s.approvals) == 2
    assert {a.approver for a in s.approvals} <= set(approvers) and REQUESTER not in {a.approver for a in s.approvals}
    records = [r.action for r in audit.records() if r.subject == f"suggestion:{sid}"]
    assert records.count("suggestion.approve") == 2 and records.count("suggestion.approve_refused") == 18
    assert audit.verify().ok


def test_three_runners_run_each_of_ten_approved_suggestions_exactly_once(postgres_url: str, tmp_path: Path,
                                                                         request: pytest.FixtureRequest) -> None:
    open_store(postgres_url).close()
    library = write_library(tmp_path / "library", "low")
    own = open_store(postgres_url, migrate=False)
    request.addfinalizer(own.close)
    # The approvals are sealed by another node's key ("approver-node"); the three runners sign with one of their
    # own and trust that key: a claim checks every approval is vouched for by a trusted signer.
    approver_node = SealPaths(tmp_path / "approver" / "seal.key", tmp_path / "approver" / "seal.pub",
                              tmp_path / "approver" / "checkpoints.jsonl")
    approver_node.signing_key.parent.mkdir()
    sealer = Sealer(approver_node)
    queue, approvals, _audit = build_queue(postgres_url, library, own, sealer=sealer)
    sealer.key  # noqa: B018  (writes the public half the runners trust)
    ids = propose(queue, approvals, library, 10)
    for sid in ids:
        assert queue.approve(sid, "uid:1002:bob").state == "approved"
    config = tmp_path / "watchstander.toml"
    config.write_text(f'[store]\nurl = "{postgres_url}"\n[playbooks]\ndirs = ["{library}"]\n'
                      f'[runner]\ncapture_dir = "{tmp_path / "captures"}"\n'
                      f'credentials_dir = "{tmp_path / "credentials"}"\n'
                      f'[audit]\nsigning_key = "{tmp_path / "runners-seal.key"}"\n'
                      f'public_key = "{tmp_path / "runners-seal.pub"}"\n'
                      f'checkpoints = "{tmp_path / "runners-checkpoints.jsonl"}"\n'
                      f'trusted_keys = ["{approver_node.public_key}"]\n', encoding="utf-8")
    ctx = spawn()
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=runner_worker, args=(str(config), f"node{i}", 60.0, go, out)) for i in range(3)]
    for p in procs:
        p.start()
    assert [m[1] for m in collect(out, 3)] == ["ready"] * 3
    go.set()
    results = collect(out, 3, timeout=120)
    for p in procs:
        p.join(60)
    assert sorted(m[1] for m in results) == ["done"] * 3, results
    store = open_store(postgres_url, migrate=False)
    try:
        with store.engine.connect() as conn:
            per_suggestion = Counter(conn.execute(select(runs.c.suggestion_id)).scalars())
            states = Counter(conn.execute(select(runs.c.state)).scalars())
            done = conn.execute(select(func.count()).select_from(suggestions)
                                .where(suggestions.c.state == "succeeded")).scalar_one()
        assert per_suggestion == {sid: 1 for sid in ids}
        assert states == {"succeeded": 10} and done == 10
        assert AuditLog(store, system_clock).verify().ok
    finally:
        store.close()
    # A lost claim is a quiet skip on the losing node: nothing at WARNING or above in any node's log.
    for i in range(3):
        text = (tmp_path / f"node{i}.log").read_text(encoding="utf-8")
        assert text == "", f"node{i} logged:\n{text}"
