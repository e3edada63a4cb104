"""The review queue on a real SQLite file: each rule is attacked, not just exercised."""

from __future__ import annotations

import json
import sqlite3
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.policy.errors import (
    AlreadyDecided,
    ConcurrentUpdate,
    DuplicateApprover,
    IllegalTransition,
    ParametersRefused,
    ParametersTampered,
    PlaybookChanged,
    RequesterCannotApprove,
    SuggestionExpired,
    SuggestionNotFound,
    SuggestionSuperseded,
)
from watchstander.agent.store.approvals import ApprovalStore
from watchstander.agent.store.audit import AuditLog, canonical
from watchstander.agent.store.suggestions import params_digest
from watchstander.playbooks import load_library

pytestmark = pytest.mark.integration


def _suggest(policy: Any, mk: Any, playbook: str = "block-address-nftables", **params: Any) -> Any:
    if not params:
        params = {"address": "203.0.113.9"} if playbook == "block-address-nftables" else {"if_index": 7}
    out = policy.queue.review(mk.incident(), mk.verdict(mk.action(playbook, **params)), actor="test")
    (s,) = out.created
    return s


def _sql(db: Path, statement: str, *args: Any) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute(statement, args)
    con.close()


def _actions(audit: AuditLog, subject: str) -> list[str]:
    return [r.action for r in audit.records() if r.subject == subject]


# ---------------------------------------------------------------- two-person integrity

def test_high_risk_needs_two_distinct_approvers(policy: Any, audit: AuditLog, mk: Any) -> None:
    s = _suggest(policy, mk, "switch-port-shutdown")
    assert s.risk == "high" and s.approvals_required == 2
    once = policy.queue.approve(s.id, mk.ALICE)
    assert once.state == "pending" and len(once.approvals) == 1  # one approver only: still pending
    with pytest.raises(DuplicateApprover):
        policy.queue.approve(s.id, mk.ALICE, "me again")
    with pytest.raises(RequesterCannotApprove):
        policy.queue.approve(s.id, "watchstander:triage")
    assert policy.queue.get(s.id).state == "pending"
    done = policy.queue.approve(s.id, mk.BOB)
    assert done.state == "approved" and [a.approver for a in done.approvals] == [mk.ALICE, mk.BOB]
    acts = _actions(audit, f"suggestion:{s.id}")
    assert acts.count("suggestion.approve") == 2 and acts.count("suggestion.approve_refused") == 2
    assert audit.verify().ok


def test_editor_is_the_requester_and_cannot_approve_the_edit(policy: Any, mk: Any) -> None:
    s = _suggest(policy, mk, "switch-port-shutdown")
    policy.queue.approve(s.id, mk.ALICE)
    new = policy.queue.edit(s.id, mk.CAROL, {"if_index": 8}, "wrong port")
    assert new.requester == mk.CAROL and new.state == "pending" and new.approvals == ()  # approvals do not carry over
    with pytest.raises(RequesterCannotApprove):
        policy.queue.approve(new.id, mk.CAROL)
    policy.queue.approve(new.id, mk.ALICE)
    assert policy.queue.approve(new.id, mk.BOB).state == "approved"


def test_lowering_required_approvers_in_the_file_does_not_help(policy: Any, db_path: Path, mk: Any) -> None:
    s = _suggest(policy, mk, "switch-port-shutdown")
    _sql(db_path, "UPDATE suggestions SET approvals_required = 1, risk = 'low' WHERE id = ?", s.id)
    with pytest.raises(ParametersTampered):
        policy.queue.approve(s.id, mk.ALICE)
    assert policy.queue.get(s.id).state == "pending"


def test_forged_approval_row_does_not_pass_the_claim(policy: Any, db_path: Path, mk: Any) -> None:
    s = _suggest(policy, mk, "switch-port-shutdown")
    policy.queue.approve(s.id, mk.ALICE)
    # Someone with write access adds a second approver and flips the state by hand.
    _sql(db_path, "INSERT INTO suggestion_approvals (suggestion_id, approver, approved_at, playbook_hash, "
         "params_sha256, comment) SELECT id, 'uid:666:mallory', created_at, playbook_hash, params_sha256, '' "
         "FROM suggestions WHERE id = ?", s.id)
    _sql(db_path, "UPDATE suggestions SET state = 'approved' WHERE id = ?", s.id)
    with pytest.raises(ParametersTampered):
        policy.queue.claim(s.id, "runner")


# ---------------------------------------------------------------- expiry

def test_approve_after_ttl_raises_and_records_expiry(policy: Any, clock: Any, audit: AuditLog, mk: Any) -> None:
    s = _suggest(policy, mk)
    clock.advance(seconds=policy.config.suggestion_ttl_s)
    with pytest.raises(SuggestionExpired):
        policy.queue.approve(s.id, mk.ALICE)
    assert policy.queue.get(s.id).state == "expired"
    with pytest.raises(SuggestionExpired):  # and it stays expired
        policy.queue.approve(s.id, mk.BOB)
    assert "suggestion.approve_refused" in _actions(audit, f"suggestion:{s.id}")


def test_sweeper_expires_pending_and_unclaimed_approved(policy: Any, clock: Any, mk: Any) -> None:
    pending = _suggest(policy, mk)
    approved = _suggest(policy, mk, address="203.0.113.10")
    policy.queue.approve(approved.id, mk.ALICE)
    clock.advance(seconds=policy.config.suggestion_ttl_s - 1)
    assert policy.queue.expire_due() == []
    clock.advance(seconds=1)
    assert sorted(policy.queue.expire_due()) == sorted([pending.id, approved.id])
    assert {policy.queue.get(i).state for i in (pending.id, approved.id)} == {"expired"}
    with pytest.raises(SuggestionExpired):
        policy.queue.claim(approved.id, "runner")
    assert policy.queue.expire_due() == []


def test_first_of_two_approvals_does_not_extend_the_ttl(policy: Any, clock: Any, mk: Any) -> None:
    s = _suggest(policy, mk, "switch-port-shutdown")
    clock.advance(seconds=policy.config.suggestion_ttl_s - 60)
    policy.queue.approve(s.id, mk.ALICE)
    clock.advance(seconds=61)
    with pytest.raises(SuggestionExpired):
        policy.queue.approve(s.id, mk.BOB)


def test_moving_the_expiry_in_the_file_is_not_a_way_around_it(policy: Any, db_path: Path, clock: Any,
                                                               audit: AuditLog, mk: Any) -> None:
    s = _suggest(policy, mk)
    clock.advance(seconds=policy.config.suggestion_ttl_s + 1)
    assert policy.queue.expire_due() == [s.id]
    _sql(db_path, "UPDATE suggestions SET state = 'pending', expires_ts = expires_ts + 1e6, "
         "expires_at = '2099-01-01T00:00:00+00:00' WHERE id = ?", s.id)
    with pytest.raises(ParametersTampered):
        policy.queue.approve(s.id, mk.ALICE)
    _sql(db_path, "UPDATE suggestions SET expires_at = ? WHERE id = ?", s.expires_at, s.id)
    with pytest.raises(ParametersTampered):
        policy.queue.approve(s.id, mk.ALICE)


# ---------------------------------------------------------------- single use

def test_approval_is_single_use(policy: Any, mk: Any) -> None:
    s = _suggest(policy, mk)
    assert policy.queue.approve(s.id, mk.ALICE).state == "approved"
    with pytest.raises(AlreadyDecided):
        policy.queue.approve(s.id, mk.BOB)
    assert policy.queue.claim(s.id, "runner").state == "queued"
    with pytest.raises(AlreadyDecided):
        policy.queue.claim(s.id, "runner")
    with pytest.raises(AlreadyDecided):
        policy.queue.reject(s.id, mk.BOB, "too late")
    policy.queue.transition(s.id, "running", "runner")
    assert policy.queue.transition(s.id, "succeeded", "runner").state == "succeeded"
    with pytest.raises(IllegalTransition):
        policy.queue.transition(s.id, "running", "runner")


def test_rejected_and_superseded_cannot_be_approved(policy: Any, mk: Any) -> None:
    a = _suggest(policy, mk)
    policy.queue.reject(a.id, mk.ALICE, "false positive")
    with pytest.raises(AlreadyDecided):
        policy.queue.approve(a.id, mk.BOB)
    b = _suggest(policy, mk, address="203.0.113.10")
    new = policy.queue.edit(b.id, mk.ALICE, {"minutes": 30})
    with pytest.raises(SuggestionSuperseded) as info:
        policy.queue.approve(b.id, mk.BOB)
    assert info.value.superseded_by == new.id
    with pytest.raises(SuggestionSuperseded):
        policy.queue.edit(b.id, mk.BOB, {"minutes": 45})


def test_runner_moves_cannot_skip_approval(policy: Any, mk: Any) -> None:
    s = _suggest(policy, mk)
    with pytest.raises(IllegalTransition):
        policy.queue.transition(s.id, "running", "runner")
    with pytest.raises(IllegalTransition):
        policy.queue.transition(s.id, "approved", "runner")
    with pytest.raises(IllegalTransition):
        policy.queue.transition(s.id, "queued", "runner")
    with pytest.raises(IllegalTransition) as info:
        policy.queue.claim(s.id, "runner")  # pending: nothing to consume yet
    assert type(info.value) is IllegalTransition and info.value.state == "pending"
    with pytest.raises(SuggestionNotFound):
        policy.queue.approve(9999, mk.ALICE)


def test_approvers_racing_do_not_double_approve(policy: Any, audit: AuditLog, mk: Any) -> None:
    for round_ in range(8):
        s = _suggest(policy, mk, address=f"203.0.113.{20 + round_}")
        barrier = threading.Barrier(3)
        results: list[Any] = []

        def go(who: str) -> None:
            barrier.wait()
            try:
                results.append(policy.queue.approve(s.id, who).state)
            except (AlreadyDecided, ConcurrentUpdate) as exc:
                results.append(type(exc).__name__)
            except Exception:  # anything else (a store error, a chain collision) fails the test below
                results.append(traceback.format_exc())

        threads = [threading.Thread(target=go, args=(who,)) for who in (mk.ALICE, mk.BOB, mk.CAROL)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count("approved") == 1, results
        assert set(results) <= {"approved", "AlreadyDecided", "ConcurrentUpdate"}, results
        assert len(policy.queue.get(s.id).approvals) == 1
    assert audit.verify().ok


# ---------------------------------------------------------------- parameter binding

def test_edit_creates_a_new_suggestion_and_supersedes_the_old(policy: Any, audit: AuditLog, mk: Any) -> None:
    old = _suggest(policy, mk)
    new = policy.queue.edit(old.id, mk.ALICE, {"minutes": "120"}, "longer block")
    assert new.id != old.id and new.supersedes == old.id and new.origin == "edit"
    assert new.parameters == {"address": "203.0.113.9", "firewall": "fw1", "minutes": 120}
    assert new.params_sha256 == params_digest(new.parameters) != old.params_sha256
    got = policy.queue.get(old.id)
    assert got.state == "superseded" and got.superseded_by == new.id
    assert "suggestion.transition" in _actions(audit, f"suggestion:{old.id}")
    assert "suggestion.create" in _actions(audit, f"suggestion:{new.id}")


def test_edit_goes_through_the_guard(policy: Any, audit: AuditLog, mk: Any) -> None:
    s = _suggest(policy, mk)
    for change, reason in (({"address": "10.0.0.1; reboot"}, "bad_parameter:address"),
                           ({"address": "10.0.0.3"}, "protected_target:10.0.0.3"),
                           ({"firewall": "core-router"}, "bad_parameter:firewall"),
                           ({"argv": "id"}, "unknown_parameter"),
                           ({"minutes": 60}, "no_change")):
        with pytest.raises(ParametersRefused) as info:
            policy.queue.edit(s.id, mk.ALICE, change)
        assert info.value.reason == reason
    assert policy.queue.get(s.id).state == "pending"
    assert [s.id] == [x.id for x in policy.queue.list()]
    assert _actions(audit, f"suggestion:{s.id}").count("suggestion.edit_refused") == 5


def test_tampered_parameters_in_the_file_fail_approval(policy: Any, db_path: Path, mk: Any) -> None:
    s = _suggest(policy, mk)
    evil = {"address": "198.51.100.1", "firewall": "fw1", "minutes": 60}
    _sql(db_path, "UPDATE suggestions SET params_json = ? WHERE id = ?", canonical(evil), s.id)
    with pytest.raises(ParametersTampered):
        policy.queue.approve(s.id, mk.ALICE)
    # Rewriting the hash column as well does not help: the audit record of the creation disagrees.
    _sql(db_path, "UPDATE suggestions SET params_sha256 = ? WHERE id = ?", params_digest(evil), s.id)
    with pytest.raises(ParametersTampered):
        policy.queue.approve(s.id, mk.ALICE)
    assert policy.queue.get(s.id).state == "pending"


def test_tampered_audit_record_fails_approval(policy: Any, db_path: Path, mk: Any) -> None:
    s = _suggest(policy, mk)
    evil = {"address": "198.51.100.1", "firewall": "fw1", "minutes": 60}
    _sql(db_path, "UPDATE suggestions SET params_json = ?, params_sha256 = ? WHERE id = ?",
         canonical(evil), params_digest(evil), s.id)
    con = sqlite3.connect(db_path)
    data = json.loads(con.execute("SELECT data FROM audit_log WHERE seq = ?", (s.audit_seq,)).fetchone()[0])
    con.close()
    data["params_sha256"] = params_digest(evil)
    _sql(db_path, "UPDATE audit_log SET data = ? WHERE seq = ?", canonical(data), s.audit_seq)
    with pytest.raises(ParametersTampered):
        policy.queue.approve(s.id, mk.ALICE)


def test_parameters_changed_after_approval_fail_the_claim(policy: Any, db_path: Path, mk: Any) -> None:
    s = _suggest(policy, mk)
    policy.queue.approve(s.id, mk.ALICE)
    _sql(db_path, "UPDATE suggestions SET params_json = ? WHERE id = ?",
         canonical({"address": "198.51.100.1", "firewall": "fw1", "minutes": 60}), s.id)
    with pytest.raises(ParametersTampered):
        policy.queue.claim(s.id, "runner")
    assert policy.queue.get(s.id).state == "approved"


def test_newly_protected_target_fails_approval(policy: Any, make_policy: Any, mk: Any) -> None:
    from watchstander.agent.config.model import Asset

    s = _suggest(policy, mk)
    stricter = make_policy(assets=[Asset(cidr="203.0.113.0/24", name="partner", protected=True)])
    with pytest.raises(ParametersRefused) as info:
        stricter.queue.approve(s.id, mk.ALICE)
    assert info.value.reason == "protected_target:203.0.113.9"


# ---------------------------------------------------------------- playbook binding

def test_playbook_file_changed_after_suggestion(policy: Any, make_policy: Any, library: Path,
                                               approvals: ApprovalStore, mk: Any) -> None:
    s = _suggest(policy, mk)
    path = library / "block-address-nftables.yaml"
    path.write_bytes(path.read_bytes() + b"# edited\n")
    changed = make_policy()
    with pytest.raises(PlaybookChanged):
        changed.queue.approve(s.id, mk.ALICE)
    # Even once someone approves the new content, the suggestion stays bound to the old hash.
    for playbook in load_library([library], include_shipped=False):
        approvals.approve_with(playbook, ("uid:0:root", "uid:65534:nobody"))
    with pytest.raises(PlaybookChanged):
        make_policy().queue.approve(s.id, mk.ALICE)
    assert changed.queue.get(s.id).state == "pending"


def test_revoked_playbook_cannot_be_approved_or_claimed(policy: Any, approvals: ApprovalStore, mk: Any) -> None:
    a = _suggest(policy, mk)
    b = _suggest(policy, mk, address="203.0.113.10")
    policy.queue.approve(b.id, mk.ALICE)
    approvals.revoke("block-address-nftables", "uid:0:root", "withdrawn")
    with pytest.raises(PlaybookChanged):
        policy.queue.approve(a.id, mk.ALICE)
    with pytest.raises(PlaybookChanged):
        policy.queue.claim(b.id, "runner")


def test_every_transition_is_audited_and_the_chain_holds(policy: Any, audit: AuditLog, mk: Any) -> None:
    s = _suggest(policy, mk)
    policy.queue.approve(s.id, mk.ALICE)
    policy.queue.claim(s.id, "runner")
    policy.queue.transition(s.id, "running", "runner")
    policy.queue.transition(s.id, "rolled_back", "runner", "post-check failed")
    moves = [(r.data["from"], r.data["to"]) for r in audit.records()
             if r.subject == f"suggestion:{s.id}" and r.action == "suggestion.transition"]
    assert moves == [("pending", "approved"), ("approved", "queued"), ("queued", "running"),
                     ("running", "rolled_back")]
    assert audit.verify().ok


def test_one_person_through_two_doors_is_one_approver(make_policy: Any, approve_all: Any, mk: Any) -> None:
    """[policy.people]: the CLI's uid and the console's certificate of one person count once."""
    approve_all()
    policy = make_policy(people={"alice": ("uid:1001", "console:1234567890@MIL")})
    s = _suggest(policy, mk, "switch-port-shutdown")
    policy.queue.approve(s.id, "uid:1001:alice")
    with pytest.raises(DuplicateApprover):
        policy.queue.approve(s.id, "console:1234567890@mil")
    assert policy.queue.get(s.id).state == "pending"
    done = policy.queue.approve(s.id, "console:2345678901@mil")
    assert done.state == "approved"
    # Unlinked, the two doors are two principals: that is what the table is for (docs/console.md).
    unlinked = make_policy()
    t = _suggest(unlinked, mk, "switch-port-shutdown", if_index=9)
    unlinked.queue.approve(t.id, "uid:1001:alice")
    assert unlinked.queue.approve(t.id, "console:1234567890@mil").state == "approved"
