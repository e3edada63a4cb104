"""block-address-ios-acl on the emulated router: the exact session, the audit trail, the rollback."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_block_on_router_runs_the_exact_session(router_kit) -> None:  # type: ignore[no-untyped-def]
    kit, emulator = router_kit()
    sid = kit.approved("block-address-ios-acl", {"address": "203.0.113.7", "sequence": 100})
    run = kit.run(sid)
    assert run.state == "succeeded", run.detail
    assert [s.step_id for s in run.steps] == ["acl-exists", "add-deny", "deny-present"]
    assert any("100 deny ip host 203.0.113.7 any log" in e for e in emulator.acl("WATCHSTANDER-BLOCK"))
    assert kit.app.audit.verify().ok
