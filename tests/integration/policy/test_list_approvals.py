"""The review queue's list carries each suggestion's approvals, as `get` (and `suggestions show`) does."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from watchstander.agent.cli import suggestions as cli_suggestions
from watchstander.agent.cli.context import Context
from watchstander.agent.models import Incident, Provenance, RecommendedAction, TriageVerdict
from watchstander.agent.store.approvals import ApprovalStore
from watchstander.agent.store.engine import Store
from watchstander.agent.store.suggestions import load_approvals_for, suggestion_approvals
from watchstander.playbooks import load_library

pytestmark = pytest.mark.integration

WEBHOOK = {"incident": "inc-1", "severity": "warning"}  # notify-webhook: low risk, one approver


def _suggest(policy: Any, mk: Any, playbook: str, **params: Any) -> Any:
    out = policy.queue.review(mk.incident(), mk.verdict(mk.action(playbook, **params)), actor="test")
    (s,) = out.created
    return s


def _listed(policy: Any, suggestion_id: int) -> Any:
    (s,) = [s for s in policy.queue.list() if s.id == suggestion_id]
    return s


def test_list_carries_the_approval_of_an_approved_low_risk_suggestion(policy: Any, mk: Any) -> None:
    s = _suggest(policy, mk, "notify-webhook", **WEBHOOK)
    assert s.risk == "low" and s.approvals_required == 1 and s.state == "pending"
    policy.queue.approve(s.id, mk.ALICE, "tell them")
    listed = _listed(policy, s.id)
    assert listed.state == "approved" and [a.approver for a in listed.approvals] == [mk.ALICE]
    assert listed == policy.queue.get(s.id)
    assert listed.as_dict()["approvals"] == policy.queue.get(s.id).as_dict()["approvals"]


def test_list_carries_both_approvals_of_an_approved_high_risk_suggestion(policy: Any, mk: Any) -> None:
    s = _suggest(policy, mk, "switch-port-shutdown", if_index=7)
    assert s.risk == "high" and s.approvals_required == 2
    policy.queue.approve(s.id, mk.ALICE)
    policy.queue.approve(s.id, mk.BOB)
    listed = _listed(policy, s.id)
    assert listed.state == "approved" and [a.approver for a in listed.approvals] == [mk.ALICE, mk.BOB]
    assert listed == policy.queue.get(s.id)


def test_list_carries_the_first_of_two_approvals(policy: Any, mk: Any) -> None:
    s = _suggest(policy, mk, "switch-port-shutdown", if_index=7)
    policy.queue.approve(s.id, mk.ALICE)
    listed = _listed(policy, s.id)
    assert listed.state == "pending" and [a.approver for a in listed.approvals] == [mk.ALICE]
    assert listed == policy.queue.get(s.id)


def test_list_keeps_each_suggestions_approvals_apart(policy: Any, mk: Any) -> None:
    low = _suggest(policy, mk, "notify-webhook", **WEBHOOK)
    high = _suggest(policy, mk, "switch-port-shutdown", if_index=7)
    untouched = _suggest(policy, mk, "switch-port-shutdown", if_index=8)
    policy.queue.approve(low.id, mk.CAROL)
    policy.queue.approve(high.id, mk.ALICE)
    policy.queue.approve(high.id, mk.BOB)
    listed = policy.queue.list()
    assert [s.id for s in listed] == [untouched.id, high.id, low.id]
    assert listed == [policy.queue.get(i) for i in (untouched.id, high.id, low.id)]
    assert [len(s.approvals) for s in listed] == [0, 2, 1]
    assert [s.id for s in policy.queue.list(state="approved")] == [high.id, low.id]
    assert policy.queue.list(state="approved", limit=1)[0].approvals == policy.queue.get(high.id).approvals


def test_list_loads_all_approvals_in_one_query(policy: Any, mk: Any, store: Store) -> None:
    for port in range(1, 6):
        s = _suggest(policy, mk, "switch-port-shutdown", if_index=port)
        policy.queue.approve(s.id, mk.ALICE)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        listed = policy.queue.list()
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert [len(s.approvals) for s in listed] == [1] * 5
    assert sum("suggestion_approvals" in q for q in statements) == 1


def test_approvals_of_more_ids_than_one_query_binds(store: Store) -> None:
    ids = list(range(1, 1202))
    with store.begin() as c:
        c.execute(suggestion_approvals.insert(), [
            {"suggestion_id": i, "approver": who, "approved_at": "t", "playbook_hash": "p", "params_sha256": "s",
             "comment": ""} for i in ids for who in ("a", "b")[: 1 + i % 2]])
    with store.engine.connect() as c:
        found = load_approvals_for(c, [*ids, 5000])
    assert sorted(found) == ids
    assert all([a.approver for a in found[i]] == ["a", "b"][: 1 + i % 2] for i in ids)


# ---------------------------------------------------------------- through the CLI

@dataclass
class As(Context):  # type: ignore[misc]  # watchstander.* is an unknown type to mypy (pyproject.toml)
    """A context whose identity a test chooses (the real one is the invoking OS user)."""

    who: str = "uid:1001:alice"

    @property
    def identity(self) -> str:
        return self.who


def _parser() -> argparse.ArgumentParser:
    """`watchstander --config PATH suggestions ...` alone (not the whole command tree)."""
    parser = argparse.ArgumentParser(prog="watchstander")
    parser.add_argument("--config", type=Path, required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    cli_suggestions.register(sub, argparse.ArgumentParser(add_help=False))
    return parser


@pytest.fixture
def cli(config_file: Any, clock: Any, capsys: pytest.CaptureFixture[str], cli_policy_toml: str) -> Any:
    """Run one `suggestions` command in-process (`--local`) as `who`; returns (status, stdout)."""
    path: Path = config_file(cli_policy_toml)

    def go(*argv: str, who: str = "uid:1001:alice") -> tuple[int, str]:
        local = ("--local",) if argv[1] in ("list", "show") else ()  # --local reads only
        args = _parser().parse_args(["--config", str(path), *argv, *local])
        ctx = As(config_path=args.config, clock=clock, who=who)
        try:
            status = args.handler(args, ctx)
        finally:
            ctx.close()
        return status, capsys.readouterr().out

    go.path = path  # type: ignore[attr-defined]
    go.clock = clock  # type: ignore[attr-defined]
    return go


@pytest.fixture
def cli_seeded(cli: Any) -> list[int]:
    """Approve the shipped playbooks; suggest a low-risk notify-webhook and a high-risk port shutdown."""
    ctx = As(config_path=cli.path, clock=cli.clock)
    try:
        approvals = ApprovalStore(ctx.store, ctx.audit, ctx.clock)
        for playbook in load_library():
            approvals.approve_with(playbook, ("uid:0:root", "uid:65534:nobody"))
        verdict = TriageVerdict(
            severity="high", confidence=0.9, disposition="true_positive", summary="s", rationale="r",
            recommended_actions=(RecommendedAction(playbook="notify-webhook", parameters=dict(WEBHOOK)),
                                 RecommendedAction(playbook="switch-port-shutdown", parameters={"if_index": 7})),
            provenance=Provenance(analyst="baseline", analyst_version="t"))
        out = cli_suggestions.build_queue(ctx).review(
            Incident("fp", "203.0.113.9", "t", "high", 0, 0, id=1), verdict, actor="test")
        return [s.id for s in out.created]
    finally:
        ctx.close()


def _appr_column(table: str) -> dict[int, str]:
    """The APPR cell of each row of `suggestions list`, by suggestion id."""
    header, *rows = table.splitlines()
    col = header.split().index("APPR")
    return {int(row.split()[0]): row.split()[col] for row in rows if row.strip()}


def test_cli_list_shows_given_approvals(cli: Any, cli_seeded: list[int]) -> None:
    low, high = cli_seeded
    assert _appr_column(cli("suggestions", "list")[1]) == {low: "0/1", high: "0/2"}
    assert cli("suggestions", "approve", str(low))[0] == 0
    assert cli("suggestions", "approve", str(high))[0] == 0
    status, out = cli("suggestions", "list")
    assert status == 0 and _appr_column(out) == {low: "1/1", high: "1/2"}
    assert cli("suggestions", "approve", str(high), who="uid:1002:bob")[0] == 0
    assert _appr_column(cli("suggestions", "list")[1]) == {low: "1/1", high: "2/2"}
