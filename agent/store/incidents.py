"""Findings and incidents in the store (component "core"): upserts keyed by stable identities."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)

from ..clock import Clock
from ..models import Finding, Incident, TriageVerdict, severity_rank
from .engine import Component, Store

log = logging.getLogger(__name__)

_meta = MetaData()

incidents = Table(
    "incidents", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("entity", String(300), nullable=False, index=True),
    Column("title", String(500), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(32), nullable=False, default="open"),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False, index=True),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("verdict_json", Text),
)

findings = Table(
    "findings", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("detector", String(64), nullable=False),
    Column("title", String(500), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("entities_json", Text, nullable=False),
    Column("techniques_json", Text, nullable=False),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("count", Integer, nullable=False),
    Column("counts_json", Text, nullable=False),
    Column("attributes_json", Text, nullable=False),
    Column("evidence_json", Text, nullable=False),
)

ingest_runs = Table(
    "ingest_runs", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", String(40), nullable=False),
    Column("finished_at", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("summary_json", Text, nullable=False),
)


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


SCHEMA = Component("core", (_v1,))


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def stored_time(value: Any) -> float:
    """A stored epoch time as a float; what is no number (a row edited by hand) reads as NaN, shown as out of range."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def finding_from_row(row: Any) -> Finding:
    """Rebuild a Finding from its stored row."""
    return Finding(row.detector, row.title, row.severity, json.loads(row.entities_json),
                   tuple(json.loads(row.techniques_json)), stored_time(row.first_seen),
                   stored_time(row.last_seen), row.count,
                   json.loads(row.counts_json), json.loads(row.attributes_json), json.loads(row.evidence_json))


class IncidentStore:
    """Reads and writes incidents and their findings."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def find_open(self, conn: Connection, entity: str, since: float) -> tuple[str, float, float] | None:
        """The newest incident about `entity` active at or after `since`: (fingerprint, first, last seen)."""
        row = conn.execute(
            select(incidents.c.fingerprint, incidents.c.first_seen, incidents.c.last_seen)
            .where(incidents.c.entity == entity, incidents.c.last_seen >= since)
            .order_by(incidents.c.last_seen.desc()).limit(1)
        ).first()
        return (row.fingerprint, row.first_seen, row.last_seen) if row else None

    def upsert_incident(self, conn: Connection, inc: Incident) -> int:
        """Insert or update the incident row by fingerprint; returns its id."""
        now = self.clock().isoformat()
        existing = conn.execute(select(incidents.c.id, incidents.c.first_seen, incidents.c.last_seen)
                                .where(incidents.c.fingerprint == inc.fingerprint)).first()
        if existing is None:
            result = conn.execute(incidents.insert().values(
                fingerprint=inc.fingerprint, entity=inc.entity, title=inc.title, severity=inc.severity,
                status=inc.status, first_seen=inc.first_seen, last_seen=inc.last_seen,
                created_at=now, updated_at=now))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])
        conn.execute(incidents.update().where(incidents.c.id == existing.id).values(
            title=inc.title, severity=inc.severity, updated_at=now,
            first_seen=min(existing.first_seen, inc.first_seen),
            last_seen=max(existing.last_seen, inc.last_seen)))
        return int(existing.id)

    def upsert_findings(self, conn: Connection, incident_id: int, items: Iterable[Finding]) -> None:
        """Insert or refresh findings by their stable key."""
        for f in items:
            values = dict(
                incident_id=incident_id, detector=f.detector, title=f.title, severity=f.severity,
                entities_json=_dumps(f.entities), techniques_json=_dumps(list(f.techniques)),
                first_seen=f.first_seen, last_seen=f.last_seen, count=f.count,
                counts_json=_dumps(f.counts), attributes_json=_dumps(f.attributes),
                evidence_json=_dumps(f.evidence))
            key = f.key
            # Labelled: Row.count is also the tuple method, so mypy cannot see the column under that name.
            row = conn.execute(select(findings.c.id, findings.c.count.label("stored_count"))
                               .where(findings.c.key == key)).first()
            if row is None:
                conn.execute(findings.insert().values(key=key, **values))
            elif f.count >= row.stored_count:
                conn.execute(findings.update().where(findings.c.id == row.id).values(**values))

    def load(self, conn: Connection, incident_id: int) -> Incident | None:
        """The incident with every stored finding."""
        row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
        if row is None:
            return None
        inc = Incident(row.fingerprint, row.entity, row.title, row.severity, stored_time(row.first_seen),
                       stored_time(row.last_seen), id=row.id, status=row.status)
        for frow in conn.execute(select(findings).where(findings.c.incident_id == incident_id)
                                 .order_by(findings.c.first_seen)):
            try:
                inc.findings[frow.key] = finding_from_row(frow)
            except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                log.warning("incident %s: stored finding %s is unreadable (%s); left out", incident_id, frow.key, exc)
        if row.verdict_json:
            try:
                inc.verdict = TriageVerdict.model_validate_json(row.verdict_json)
            except ValidationError as exc:
                log.warning("incident %s: stored verdict is unreadable (%d errors); shown without it",
                            incident_id, exc.error_count())
        return inc

    def set_verdict(self, conn: Connection, inc: Incident) -> None:
        """Store the incident's aggregate fields and its verdict."""
        assert inc.id is not None and inc.verdict is not None
        conn.execute(incidents.update().where(incidents.c.id == inc.id).values(
            title=inc.title, severity=inc.severity, first_seen=inc.first_seen, last_seen=inc.last_seen,
            verdict_json=inc.verdict.model_dump_json(), updated_at=self.clock().isoformat()))

    def list(self, limit: int = 1000) -> list[Incident]:
        """Incidents, most severe and most recent first, with their findings."""
        with self.store.engine.connect() as conn:
            ids = [r.id for r in conn.execute(select(incidents.c.id).order_by(incidents.c.last_seen.desc()).limit(limit))]
            out = [inc for i in ids if (inc := self.load(conn, i)) is not None]
        # NaN (a time that is no number) sorts last rather than making the order undefined.
        out.sort(key=lambda i: (-severity_rank(i.verdict.severity if i.verdict else i.severity),
                                -i.last_seen if not math.isnan(i.last_seen) else math.inf))
        return out

    def get(self, incident_id: int) -> Incident | None:
        """One incident by id."""
        with self.store.engine.connect() as conn:
            return self.load(conn, incident_id)

    def record_run(self, conn: Connection, started: str, actor: str, summary: dict[str, Any]) -> None:
        """Keep a summary of one ingest run."""
        conn.execute(ingest_runs.insert().values(started_at=started, finished_at=self.clock().isoformat(),
                                                 actor=actor, summary_json=_dumps(summary)))
