"""Decide: findings correlated into incidents, each touched incident triaged, its actions guarded and queued."""

from __future__ import annotations

from collections.abc import Sequence

from ..detection.correlator import Correlator, refresh_summary
from ..models import Finding, Incident
from ..triage.site import asset_context
from .wiring import App


def decide(app: App, findings: Sequence[Finding], actor: str) -> list[Incident]:
    """Correlate findings into incidents, triage each touched one, guard its actions and queue suggestions."""
    repo = app.incident_store()
    analyst = app.analyst()
    touched: list[int] = []
    with app.store.begin() as conn:
        correlator = Correlator(app.config.correlation.window_s,
                                lambda entity, since: repo.find_open(conn, entity, since))
        for inc in correlator.add_all(findings):
            inc_id = repo.upsert_incident(conn, inc)
            repo.upsert_findings(conn, inc_id, inc.findings.values())
            touched.append(inc_id)
    review = app.review_queue()
    out: list[Incident] = []
    for inc_id in touched:
        full = repo.get(inc_id)
        assert full is not None
        refresh_summary(full)
        # The model is asked with no transaction open: a slow answer must not hold the store.
        verdict = app.triage.triage(full, analyst.triage(full), asset_context(full, app.assets))
        full.verdict = verdict
        with app.store.begin() as conn:
            repo.set_verdict(conn, full)
            app.audit.append(actor, "triage.verdict", f"incident:{inc_id}", {
                "fingerprint": full.fingerprint,
                "severity": verdict.severity,
                "disposition": verdict.disposition,
                "confidence": verdict.confidence,
                "techniques": list(verdict.techniques),
                "provenance": verdict.provenance.model_dump(mode="json"),
            }, conn=conn)
            outcome = review.review(full, verdict, actor=actor, conn=conn)
        full.outcome = outcome
        out.append(full)
    return out
