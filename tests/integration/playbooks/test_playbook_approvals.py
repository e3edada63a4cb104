"""Definition approvals bound to the exact content hash, with a real SQLite store file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.clock import fixed_clock
from watchstander.agent.store.approvals import ApprovalStatus, ApprovalStore
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.engine import Store
from watchstander.agent.store.schema import open_store
from watchstander.playbooks import NotApprovedError, load_playbook

pytestmark = pytest.mark.integration

ALICE, BOB = "uid:1001:alice", "uid:1002:bob"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)  # the conftest clock


def test_approve_edit_reapprove(approvals: ApprovalStore, audit: AuditLog, copy_shipped: Callable[[str], Path],
                                edit_one_byte: Callable[[Path], None], now: datetime) -> None:
    path = copy_shipped("block-address-nftables")
    original = load_playbook(path)
    assert approvals.status(original) is ApprovalStatus.NEVER
    assert not approvals.is_approved(original)

    first = approvals.approve(original, ALICE, "reviewed nft syntax")
    assert approvals.is_approved(original)
    assert (first.approver, first.approved_at, first.content_hash) == (ALICE, now.isoformat(), original.content_hash)

    edit_one_byte(path)
    edited = load_playbook(path)
    assert edited.content_hash != original.content_hash
    assert not approvals.is_approved(edited)
    assert approvals.status(edited) is ApprovalStatus.CHANGED
    with pytest.raises(NotApprovedError) as info:
        approvals.require_approved(edited)
    assert info.value.playbook_id == edited.id and info.value.status == "changed since approval"

    second = approvals.approve(edited, BOB, "typo fix")
    assert approvals.is_approved(edited)
    assert approvals.require_approved(edited) == second
    # The new content supersedes the old: reverting the file does not quietly re-enable it.
    assert not approvals.is_approved(original)
    history = approvals.approvals(original.id)
    assert [a.id for a in history] == [second.id, first.id]
    assert history[1].revoked_by == BOB and "superseded" in (history[1].revoke_reason or "")

    records = [r for r in audit.records() if r.action == "playbook.approve"]
    assert [(r.actor, r.subject, r.data["content_hash"]) for r in records] == [
        (ALICE, f"playbook:{original.id}", original.content_hash),
        (BOB, f"playbook:{original.id}", edited.content_hash),
    ]
    assert records[1].data["superseded"] == [first.id]
    assert audit.verify().ok


def test_approving_twice_records_once(approvals: ApprovalStore, audit: AuditLog,
                                      copy_shipped: Callable[[str], Path]) -> None:
    playbook = load_playbook(copy_shipped("notify-webhook"))
    first = approvals.approve(playbook, ALICE)
    assert approvals.approve(playbook, BOB) == first
    assert audit.count() == 1


def test_revoke(approvals: ApprovalStore, audit: AuditLog, copy_shipped: Callable[[str], Path]) -> None:
    playbook = load_playbook(copy_shipped("notify-webhook"))
    approvals.approve(playbook, ALICE)
    revoked = approvals.revoke(playbook.id, BOB, "webhook retired")
    assert [a.revoke_reason for a in revoked] == ["webhook retired"]
    assert approvals.status(playbook) is ApprovalStatus.REVOKED
    assert approvals.revoke(playbook.id, BOB) == []
    last = list(audit.records())[-1]
    assert (last.action, last.actor, last.data["reason"]) == ("playbook.revoke", BOB, "webhook retired")
    approvals.approve(playbook, ALICE, "back in service")
    assert approvals.is_approved(playbook)


def test_approvals_survive_reopening_the_store(tmp_path: Path, copy_shipped: Callable[[str], Path]) -> None:
    url = f"sqlite:///{tmp_path / 'again.db'}"
    playbook = load_playbook(copy_shipped("switch-port-shutdown"))
    first = open_store(url)
    ApprovalStore(first, AuditLog(first, fixed_clock(NOW)), fixed_clock(NOW)).approve_with(playbook, (ALICE, BOB))
    first.close()
    second = open_store(url)
    try:
        assert ApprovalStore(second, AuditLog(second), fixed_clock(NOW)).is_approved(load_playbook(playbook.source))
    finally:
        second.close()


class FailingAudit(AuditLog):
    """An audit log whose append fails, as a full disk would."""

    def append(self, *args: Any, **kwargs: Any) -> Any:
        """Fail after nothing was written."""
        raise RuntimeError("audit write failed")


def test_no_approval_without_its_audit_record(store: Store, copy_shipped: Callable[[str], Path]) -> None:
    playbook = load_playbook(copy_shipped("notify-webhook"))
    failing = ApprovalStore(store, FailingAudit(store), fixed_clock(NOW))
    with pytest.raises(RuntimeError):
        failing.approve(playbook, ALICE)
    assert not failing.is_approved(playbook)
    assert failing.approvals(playbook.id) == []
