"""Operational evidence for compliance reports: what the agent itself did, read from its own tables."""

from __future__ import annotations

import json
import logging
import statistics
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.exc import SQLAlchemyError

from watchstander.guidance.report import OperationalEvidence

from .wiring import App

log = logging.getLogger(__name__)


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.fromtimestamp(float(value), timezone.utc)
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def operational_evidence(app: App, as_of: date) -> OperationalEvidence:
    """Figures from the agent's own tables up to the end of `as_of`; a missing table counts as zero."""
    cutoff = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=timezone.utc)
    notes: list[str] = []
    counts: dict[str, Any] = {}
    engine = app.store.engine
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            first_seen: dict[str, datetime] = {}
            if "incidents" in tables:
                cols = {c["name"] for c in inspect(engine).get_columns("incidents")}
                wanted = [c for c in ("id", "first_seen", "created_at", "verdict_json") if c in cols]
                triaged = model = baseline = fallbacks = 0
                for row in conn.execute(text(f"SELECT {', '.join(wanted)} FROM incidents")):
                    rec = dict(zip(wanted, row))
                    created = _parse_time(rec.get("created_at")) or _parse_time(rec.get("first_seen"))
                    if created is not None and created >= cutoff:
                        continue
                    seen = _parse_time(rec.get("first_seen"))
                    if seen is not None and rec.get("id") is not None:
                        first_seen[str(rec["id"])] = seen
                    raw = rec.get("verdict_json")
                    if not raw:
                        continue
                    try:
                        verdict = json.loads(raw)
                    except (TypeError, ValueError):
                        continue
                    triaged += 1
                    prov = verdict.get("provenance") or {} if isinstance(verdict, dict) else {}
                    if prov.get("analyst") == "model":
                        model += 1
                    elif prov.get("analyst") == "baseline":
                        baseline += 1
                    if prov.get("fallback_reason"):
                        fallbacks += 1
                counts.update(incidents_triaged=triaged, verdicts_model=model, verdicts_baseline=baseline,
                              model_fallbacks=fallbacks)
            else:
                notes.append("No incidents table in the store yet: incident and verdict figures are zero.")
            if "audit_log" in tables:
                delays: list[float] = []
                approved = rejected = 0
                runs: set[str] = set()
                rows = conn.execute(text(
                    "SELECT time, action, subject, data FROM audit_log "
                    "WHERE action LIKE 'suggestion.%' OR action LIKE 'playbook%run%' ORDER BY seq"))
                incident_of: dict[str, object] = {}  # suggestion subject -> incident id
                for when_s, action, subject, data in rows:
                    when = _parse_time(when_s)
                    if when is None or when >= cutoff:
                        continue
                    if action.startswith("playbook"):
                        runs.add(subject)
                        continue
                    try:
                        payload = json.loads(data) if data else {}
                    except ValueError:
                        payload = {}
                    if not isinstance(payload, dict):
                        continue
                    if action == "suggestion.create":
                        incident_of[subject] = payload.get("incident")
                        continue
                    # A suggestion is decided when it moves to approved (enough approvers) or
                    # rejected; single approvals of a two-person suggestion are not decisions.
                    if action != "suggestion.transition" or payload.get("to") not in ("approved", "rejected"):
                        continue
                    if payload.get("to") == "approved":
                        approved += 1
                    else:
                        rejected += 1
                    incident = incident_of.get(subject)
                    seen = first_seen.get(str(incident)) if incident is not None else None
                    if seen is not None and when >= seen:
                        delays.append((when - seen).total_seconds())
                counts.update(suggestions_approved=approved, suggestions_rejected=rejected, playbooks_run=len(runs))
                if delays:
                    counts.update(median_detection_to_decision_s=statistics.median(delays), decisions_timed=len(delays))
                elif approved or rejected:
                    notes.append("Decisions found, but none names an incident with a first-seen time: "
                                 "no detection-to-decision median.")
    except SQLAlchemyError as exc:
        log.warning("operational evidence incomplete: %s", exc)
        notes.append(f"Store could not be read completely: {exc.__class__.__name__}.")
    return OperationalEvidence(**counts, notes=tuple(notes))
