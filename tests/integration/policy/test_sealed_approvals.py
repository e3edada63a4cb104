"""The review queue honours an approval only when its audit record is vouched for by a signed checkpoint."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.policy.errors import ParametersTampered
from watchstander.agent.store.audit import record_hash
from watchstander.agent.store.schema import open_store


def _rechain(db: Path, start: int) -> None:
    """What an attacker with write access does after editing record `start`: recompute every hash after it."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, time, actor, action, subject, data FROM audit_log WHERE seq >= ? "
                            "ORDER BY seq", (start,)).fetchall()
        prev = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", (start - 1,)).fetchone()[0]
        for seq, time, actor, action, subject, data in rows:
            h = record_hash(seq, time, actor, action, subject, data, prev)
            conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, seq))
            prev = h
        conn.execute("UPDATE audit_head SET hash = ? WHERE id = 1", (prev,))


def test_a_rechained_approval_record_is_not_honoured_at_claim(tmp_path: Path, mk: Any) -> None:
    """An approval whose audit record was edited and re-chained (the chain still verifies) cannot be claimed."""
    db = tmp_path / "w.db"
    cfg = validate_config({"store": {"url": f"sqlite:///{db}"}})
    store = open_store(cfg.store.resolved_url())
    app = App(cfg, store, lambda: mk.NOW)
    try:
        playbook = app.catalogue().get("notify-webhook")
        app.approvals.approve_with(playbook, (mk.ALICE,), "test setup")
        queue = app.review_queue()
        out = queue.review(mk.incident(), mk.verdict(mk.action("notify-webhook", "tell on-call",
                                                                incident="fp-1", severity="warning")),
                           actor="watchstander:triage")
        (sug,) = out.created
        queue.approve(sug.id, mk.BOB)
        with sqlite3.connect(db) as conn:
            (seq,) = conn.execute("SELECT max(seq) FROM audit_log WHERE action = 'suggestion.approve'").fetchone()
            conn.execute("UPDATE audit_log SET time = '2026-11-27T11:59:59+00:00' WHERE seq = ?", (seq,))
        _rechain(db, seq)
        assert app.audit.verify().ok  # the unkeyed chain is fooled
        with pytest.raises(ParametersTampered):
            app.review_queue().claim(sug.id, "watchstander:runner")
    finally:
        app.close()
        store.close()
