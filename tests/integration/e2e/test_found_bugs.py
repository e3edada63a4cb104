"""Regression tests for bugs found end to end (fixed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ATTACKER = "192.0.2.77"
USERS = ["admin", "root", "oracle", "test", "guest", "ubuntu"] * 2


def test_model_text_reaches_the_log_escaped(make_site, llm_server, kit, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    site = make_site(kit.triage_section(llm_server))
    site.approve_playbooks()
    log = kit.auth_log(tmp_path / "auth.log", {ATTACKER: USERS})
    llm_server.script(then=kit.answer({
        "severity": "high", "confidence": 0.8, "disposition": "likely_true_positive", "techniques": [],
        "summary": "s", "rationale": "r", "evidence_refs": [],
        "recommended_actions": [{"playbook": "evil\x1b[2J\x1b]0;owned\x07", "parameters": {}, "justification": "x"}],
    }))
    with caplog.at_level(logging.WARNING, logger="watchstander"):
        site.replay(log)
    assert any("model recommended refused action" in r.getMessage() for r in caplog.records)
    assert not [r.getMessage() for r in caplog.records if "\x1b" in r.getMessage() or "\x07" in r.getMessage()]


def test_finding_evidence_lists_each_event_once(make_site, kit, tmp_path: Path) -> None:
    site = make_site()
    log = kit.auth_log(tmp_path / "auth.log", {ATTACKER: USERS})
    site.replay(log)
    [listed] = site.incidents()
    [finding] = site.incident(listed["id"])["findings"]
    assert len(finding["evidence"]) == len(set(finding["evidence"])), finding["evidence"]
