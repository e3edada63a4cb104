"""Findings and incidents in the store (component "core"): upserts keyed by stable identities.

Version 2 adds the lifecycle (open -> acknowledged -> closed, reopen -> open; see
agent/app/incident_lifecycle.py for the rules), the `incident_notes` table, and what the
console's filtered listing needs to stay fast: the effective severity as a rank, the title and
entity values as lower-cased texts, the findings folded into `summary_json`, and one covering
index over every filtered column (docs/incidents.md).

A closed incident that detection updates with newer activity: closed as `false_positive` it stays
closed and the continued activity is counted (one automatic note the first time); closed as
`true_positive` or `benign` it reopens with an automatic note. Either is audited.
"""

from __future__ import annotations

import builtins
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import ValidationError
from sqlalchemy import (
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    exists,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from ..clock import Clock
from ..models import SEVERITIES, Finding, Incident, TriageVerdict, iso, severity_rank
from .audit import AuditLog
from .cluster import xact_lock
from .engine import Component, Store, insert_new

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
    # Version 2: the lifecycle, and what the filtered listing reads.
    Column("assignee", String(200), nullable=True),
    Column("disposition", String(32), nullable=True),
    Column("closed_at", String(40), nullable=True),
    Column("closed_by", String(200), nullable=True),
    Column("status_changed_at", String(40), nullable=True),
    # Bumped by every lifecycle write; a conditional UPDATE on it makes one of two racing writers lose.
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("activity_after_close", Integer, nullable=False, server_default=text("0")),
    Column("severity_rank", Integer, nullable=False, server_default=text("0")),  # the verdict's, else detectors'
    Column("asset_text", Text, nullable=False, server_default=text("''")),  # lower-cased entity values
    Column("search_text", Text, nullable=False, server_default=text("''")),  # lower-cased title and entity
    # The findings folded in (refresh_summary), so a listing page reads no finding rows.
    Column("summary_json", Text, nullable=False, server_default=text("'{}'")),
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
    # Version 3: the sensor ([agent] name) whose copy of the finding is stored (the largest count).
    Column("sensor", String(100), nullable=True),
)

# Version 4: every sensor that saw a finding, with its own count and times (the findings row keeps
# the copy with the largest count); `incident_id` follows the finding, so the sensor filter reads
# one index range instead of joining every finding.
finding_sensors = Table(
    "finding_sensors", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("finding_id", Integer, ForeignKey("findings.id", ondelete="CASCADE"), nullable=False),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("sensor", String(100), nullable=False),
    Column("count", Integer, nullable=False),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    UniqueConstraint("finding_id", "sensor", name="uq_finding_sensors"),
)

ingest_runs = Table(
    "ingest_runs", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", String(40), nullable=False),
    Column("finished_at", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("summary_json", Text, nullable=False),
)


incident_notes = Table(
    "incident_notes", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("time", String(40), nullable=False),
    Column("principal", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("text", Text, nullable=False),
)

_INDEXES = (
    Index("ix_findings_detector", findings.c.detector, findings.c.incident_id),
    Index("ix_incident_notes_incident", incident_notes.c.incident_id, incident_notes.c.id),
)

# Covers every column the listing filters and sorts on, so a filtered page and its total are read
# from this narrow index in last_seen order, never from the wide rows (verdicts, JSON). Made by the
# migration, not the table: PostgreSQL refuses B-tree entries over ~2.7 kB, so there it leaves the
# texts out (text filters then read the rows; pg_trgm would be the next step there).
_LISTING_COLUMNS = "last_seen, id, status, severity_rank, assignee"


def _listing_index_ddl(dialect: str) -> str:
    texts = ", search_text, asset_text" if dialect == "sqlite" else ""
    return f"CREATE INDEX IF NOT EXISTS ix_incidents_listing ON incidents ({_LISTING_COLUMNS}{texts})"


IncidentStatus = Literal["open", "acknowledged", "closed"]
STATUSES: tuple[IncidentStatus, ...] = get_args(IncidentStatus)
IncidentDisposition = Literal["true_positive", "benign", "false_positive"]
DISPOSITIONS: tuple[IncidentDisposition, ...] = get_args(IncidentDisposition)
NoteKind = Literal["comment", "acknowledge", "assign", "close", "reopen", "activity"]
NOTE_KINDS: tuple[NoteKind, ...] = get_args(NoteKind)
DETECTION = "watchstander:detection"  # the principal of automatic notes and transitions
MAX_ASSET_TEXT = 8000
CORRELATE_LOCK = "incidents.correlate"
MAX_ID = 2**63 - 1

_V2_COLUMNS = {
    "assignee": "VARCHAR(200)", "disposition": "VARCHAR(32)", "closed_at": "VARCHAR(40)",
    "closed_by": "VARCHAR(200)", "status_changed_at": "VARCHAR(40)",
    "version": "INTEGER NOT NULL DEFAULT 1", "activity_after_close": "INTEGER NOT NULL DEFAULT 0",
    "severity_rank": "INTEGER NOT NULL DEFAULT 0", "asset_text": "TEXT NOT NULL DEFAULT ''",
    "search_text": "TEXT NOT NULL DEFAULT ''", "summary_json": "TEXT NOT NULL DEFAULT '{}'",
}


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


def _v2(conn: Connection) -> None:
    """The lifecycle columns, incident_notes, the listing's indexes; rank and asset text filled in."""
    have = {c["name"] for c in inspect(conn).get_columns("incidents")}
    for name, ddl in _V2_COLUMNS.items():
        if name not in have:  # a store made by version 1's table
            conn.execute(text(f"ALTER TABLE incidents ADD COLUMN {name} {ddl}"))
    _meta.create_all(conn)
    for index in _INDEXES:
        index.create(conn, checkfirst=True)
    conn.execute(text(_listing_index_ddl(conn.dialect.name)))
    _add_sensor_column(conn)  # the backfill below runs this release's refresh_summary, which reads it
    t = incidents
    for row in conn.execute(select(t.c.id, t.c.severity, t.c.verdict_json, t.c.title, t.c.entity)).all():
        conn.execute(t.update().where(t.c.id == row.id).values(
            severity_rank=_rank(_verdict_severity(row.verdict_json) or row.severity),
            search_text=search_text(row.title, row.entity)))
        refresh_summary(conn, row.id, by_sensor=False)  # finding_sensors comes with version 4


def _add_sensor_column(conn: Connection) -> None:
    if "sensor" not in {c["name"] for c in inspect(conn).get_columns("findings")}:
        conn.execute(text("ALTER TABLE findings ADD COLUMN sensor VARCHAR(100)"))


def _v3(conn: Connection) -> None:
    """Findings record the sensor that saw them; the index serves the sensor filter."""
    _add_sensor_column(conn)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_findings_sensor ON findings (sensor, incident_id)"))


def _v4(conn: Connection) -> None:
    """Every sensor that saw each finding (finding_sensors), filled from the one name version 3 kept."""
    finding_sensors.create(conn, checkfirst=True)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_finding_sensors_sensor ON finding_sensors (sensor, incident_id)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_finding_sensors_incident ON finding_sensors (incident_id)"))
    # One statement, however many findings (WHERE also keeps SQLite's parser from reading ON as a join).
    conn.execute(text(
        "INSERT INTO finding_sensors (finding_id, incident_id, sensor, count, first_seen, last_seen) "
        "SELECT id, incident_id, sensor, count, first_seen, last_seen FROM findings WHERE sensor IS NOT NULL "
        "ON CONFLICT (finding_id, sensor) DO NOTHING"))


def _v5(conn: Connection) -> None:
    """A listing index led by status (the console's default view is the open incidents); trigram text search.

    Measured by benchmarks/store_scale.py with 100,000 incidents: open first page 33 -> 9 ms on
    SQLite, closed 51 -> 25 ms on PostgreSQL; pg_trgm takes a search for an address from 202 to 12 ms.
    """
    texts = ", search_text, asset_text" if conn.dialect.name == "sqlite" else ""
    conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_incidents_status_listing ON incidents "
                      f"(status, {_LISTING_COLUMNS}{texts})"))
    if conn.dialect.name != "postgresql":
        return
    try:
        with conn.begin_nested():  # a role that may not create the (trusted) extension still migrates
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            for column in ("search_text", "asset_text"):
                conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_incidents_{column}_trgm ON incidents "
                                  f"USING gin ({column} gin_trgm_ops)"))
    except DBAPIError as exc:
        log.warning("text search stays a sequential scan: pg_trgm cannot be used here (%s)",
                    str(exc.orig).splitlines()[0] if exc.orig else exc)


SCHEMA = Component("core", (_v1, _v2, _v3, _v4, _v5))


def _rank(severity: str) -> int:
    return severity_rank(severity) if severity in SEVERITIES else 0


def _verdict_severity(verdict_json: str | None) -> str | None:
    if not verdict_json:
        return None
    try:
        value = json.loads(verdict_json).get("severity")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def search_text(title: str, entity: str) -> str:
    """What free-text search reads: the title and the entity, lower-cased (Unicode-aware, in Python)."""
    return f"{title}\n{entity}".lower()


def refresh_summary(conn: Connection, incident_id: int, *, by_sensor: bool = True) -> None:
    """Fold the incident's findings into its row: detectors, techniques, entities, count, and the entity text."""
    entity = conn.execute(select(incidents.c.entity).where(incidents.c.id == incident_id)).scalar_one_or_none()
    if entity is None:
        return
    detectors: set[str] = set()
    techniques: set[str] = set()
    entities: dict[str, set[str]] = {}
    sensors: set[str] = set()
    count = 0
    f = findings
    for row in conn.execute(select(f.c.detector, f.c.techniques_json, f.c.entities_json, f.c.sensor)
                            .where(f.c.incident_id == incident_id)):
        count += 1
        detectors.add(str(row.detector))
        if row.sensor is not None:
            sensors.add(str(row.sensor))
        try:
            techs, ents = json.loads(row.techniques_json), json.loads(row.entities_json)
        except ValueError:  # a row edited by hand: what can be read still counts
            continue
        if isinstance(techs, list):
            techniques.update(str(x) for x in techs)
        if isinstance(ents, dict):
            for role, value in ents.items():
                entities.setdefault(str(role), set()).add(str(value))
    if by_sensor:
        sensors.update(str(s) for s in conn.execute(select(finding_sensors.c.sensor).distinct().where(
            finding_sensors.c.incident_id == incident_id)).scalars())
    summary = {"detectors": sorted(detectors), "techniques": sorted(techniques), "findings": count,
               "entities": {role: sorted(v) for role, v in sorted(entities.items())}, "sensors": sorted(sensors)}
    values = {str(entity)} | {v for vs in entities.values() for v in vs}
    conn.execute(incidents.update().where(incidents.c.id == incident_id).values(
        asset_text="\n".join(sorted(values)).lower()[:MAX_ASSET_TEXT], summary_json=_dumps(summary)))


@dataclass(frozen=True)
class IncidentNote:
    """One note on an incident: a comment, a transition's reason, or an automatic record of detection."""

    id: int
    incident_id: int
    time: str
    principal: str
    kind: str
    text: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "incident_id": self.incident_id, "time": self.time, "principal": self.principal,
                "kind": self.kind, "text": self.text}


@dataclass(frozen=True)
class IncidentState:
    """Where an incident stands in its lifecycle (the row's lifecycle columns)."""

    id: int
    status: str
    assignee: str | None
    disposition: str | None
    closed_at: str | None
    closed_by: str | None
    status_changed_at: str | None
    version: int
    activity_after_close: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the version, which only guards writes)."""
        return {"id": self.id, "status": self.status, "assignee": self.assignee, "disposition": self.disposition,
                "closed_at": self.closed_at, "closed_by": self.closed_by,
                "status_changed_at": self.status_changed_at, "activity_after_close": self.activity_after_close}


@dataclass(frozen=True)
class IncidentQuery:
    """The console's filters; every one optional, all of them ANDed. Times are epoch seconds."""

    min_severity: str | None = None                 # this severity or above (the verdict's, else detectors')
    severities: frozenset[str] | None = None        # exactly one of these
    statuses: frozenset[str] | None = None
    detector: str | None = None                     # exact detector id among the incident's findings
    sensor: str | None = None                       # exact sensor name ([agent] name) among its findings
    asset: str | None = None                        # case-insensitive substring of the entity or any entity value
    text: str | None = None                         # case-insensitive substring of the title or the entity
    assignee: str | None = None                     # exact assignee
    seen_after: float | None = None                 # last_seen >= this
    seen_before: float | None = None                # last_seen <= this
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class IncidentRow:
    """One incident as the listing shows it: no findings, their detectors, techniques and entities folded in."""

    id: int
    title: str
    entity: str
    severity: str
    detector_severity: str
    status: str
    disposition: str | None
    assignee: str | None
    detectors: list[str]
    techniques: list[str]
    entities: dict[str, list[str]]
    findings: int
    first_seen: float
    last_seen: float
    sensors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as ISO 8601 UTC)."""
        return {"id": self.id, "title": self.title, "entity": self.entity, "severity": self.severity,
                "detector_severity": self.detector_severity, "status": self.status,
                "disposition": self.disposition, "assignee": self.assignee, "detectors": self.detectors,
                "attack_techniques": self.techniques, "entities": self.entities, "findings": self.findings,
                "sensors": self.sensors, "first_seen": iso(self.first_seen), "last_seen": iso(self.last_seen)}


@dataclass(frozen=True)
class IncidentPage:
    """One page of a search: the rows, and how many incidents match in all."""

    rows: list[IncidentRow]
    total: int
    limit: int
    offset: int
    query: IncidentQuery = field(default_factory=IncidentQuery)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"incidents": [r.as_dict() for r in self.rows], "total": self.total, "limit": self.limit,
                "offset": self.offset}


def _state_from_row(row: Any) -> IncidentState:
    return IncidentState(int(row.id), str(row.status), row.assignee, row.disposition, row.closed_at, row.closed_by,
                         row.status_changed_at, int(row.version), int(row.activity_after_close))


def _like(value: str) -> str:
    """`value` as a LIKE pattern matching it anywhere, its wildcards escaped with backslash."""
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(q: IncidentQuery, *, counting: bool = False) -> list[Any]:
    """The WHERE terms of `q`; `counting` picks the detector and sensor tests fastest over every row."""
    t = incidents
    where: list[Any] = []
    if q.min_severity is not None:
        where.append(t.c.severity_rank >= _rank(q.min_severity))
    if q.severities is not None:
        where.append(t.c.severity_rank.in_(sorted({_rank(s) for s in q.severities})))
    if q.statuses is not None:
        where.append(t.c.status.in_(sorted(q.statuses)))
    if q.detector is not None and counting:  # one index range read, then a set of ids
        where.append(t.c.id.in_(select(findings.c.incident_id).where(findings.c.detector == q.detector)))
    elif q.detector is not None:  # the page walks the listing index in order and stops after `limit`
        where.append(exists().where(findings.c.incident_id == t.c.id, findings.c.detector == q.detector))
    if q.sensor is not None and counting:
        where.append(t.c.id.in_(select(finding_sensors.c.incident_id).where(finding_sensors.c.sensor == q.sensor)))
    elif q.sensor is not None:  # as for detectors: the page walks the index in order (188 -> 0.7 ms on SQLite)
        where.append(exists().where(finding_sensors.c.incident_id == t.c.id, finding_sensors.c.sensor == q.sensor))
    if q.asset:
        where.append(t.c.asset_text.like(_like(q.asset), escape="\\"))
    if q.text:
        where.append(t.c.search_text.like(_like(q.text), escape="\\"))
    if q.assignee is not None:
        where.append(t.c.assignee == q.assignee)
    if q.seen_after is not None:
        where.append(t.c.last_seen >= q.seen_after)
    if q.seen_before is not None:
        where.append(t.c.last_seen <= q.seen_before)
    return where


def list_order(inc: Incident) -> tuple[int, float]:
    """The listing's sort key: most severe (the verdict's severity, else the detectors') and most recent first."""
    # NaN (a time that is no number) sorts last rather than making the order undefined.
    return (-severity_rank(inc.verdict.severity if inc.verdict else inc.severity),
            -inc.last_seen if not math.isnan(inc.last_seen) else math.inf)


def _listing_row(r: Any) -> IncidentRow:
    try:
        summary = json.loads(r.summary_json)
    except (TypeError, ValueError):
        summary = {}
    if not isinstance(summary, dict):
        summary = {}
    rank = r.severity_rank
    return IncidentRow(
        int(r.id), r.title, r.entity, SEVERITIES[rank] if isinstance(rank, int) and 0 <= rank < 5 else r.severity,
        r.severity, r.status, r.disposition, r.assignee, list(summary.get("detectors", [])),
        list(summary.get("techniques", [])), dict(summary.get("entities", {})), int(summary.get("findings", 0)),
        stored_time(r.first_seen), stored_time(r.last_seen), [str(x) for x in summary.get("sensors", [])])


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

    def __init__(self, store: Store, clock: Clock, audit: AuditLog | None = None, *,
                 sensor: str | None = None) -> None:
        """`sensor`: the [agent] name recorded on the findings this store writes (None: not recorded)."""
        self.store = store
        self.clock = clock
        self.sensor = sensor
        # Without the composition root's (sealed) log, automatic transitions are still chained.
        self._audit = audit or AuditLog(store, clock)

    def find_open(self, conn: Connection, entity: str, since: float) -> tuple[str, float, float] | None:
        """The newest incident about `entity` active at or after `since`: (fingerprint, first, last seen)."""
        # Sensors sharing a PostgreSQL store correlate one at a time (the lock is held until this
        # ingest commits): otherwise two could both find no incident for an attacker and open two.
        xact_lock(conn, CORRELATE_LOCK)
        row = conn.execute(
            select(incidents.c.fingerprint, incidents.c.first_seen, incidents.c.last_seen)
            .where(incidents.c.entity == entity, incidents.c.last_seen >= since)
            .order_by(incidents.c.last_seen.desc()).limit(1)
        ).first()
        return (row.fingerprint, row.first_seen, row.last_seen) if row else None

    def upsert_incident(self, conn: Connection, inc: Incident) -> int:
        """Insert or update the incident row by fingerprint; returns its id.

        Newer activity on a closed incident reopens it (closed as true_positive or benign) or is
        counted and noted while it stays closed (closed as false_positive); both are audited.
        """
        now = self.clock().isoformat()
        t = incidents
        read = (select(t.c.id, t.c.first_seen, t.c.last_seen, t.c.status, t.c.disposition, t.c.verdict_json,
                       t.c.version, t.c.activity_after_close)
                .where(t.c.fingerprint == inc.fingerprint).with_for_update())
        existing = conn.execute(read).first()
        if existing is None:
            # Insert-or-nothing in one statement: two sensors upserting one new fingerprint at once make
            # one incident, and the loser merges into it below (no IntegrityError). Only when the row is
            # missing: on PostgreSQL every such INSERT takes an id from the sequence, even one that
            # inserts nothing, and ids that jump at every flush would puzzle people.
            new_id = insert_new(conn, t, ("fingerprint",), {
                "fingerprint": inc.fingerprint, "entity": inc.entity, "title": inc.title,
                "severity": inc.severity, "status": inc.status, "first_seen": inc.first_seen,
                "last_seen": inc.last_seen, "created_at": now, "updated_at": now,
                "severity_rank": _rank(inc.verdict.severity if inc.verdict else inc.severity),
                "asset_text": inc.entity.lower(), "search_text": search_text(inc.title, inc.entity)})
            if new_id is not None:
                return new_id
            existing = conn.execute(read).one()
        values: dict[str, Any] = {
            "title": inc.title, "severity": inc.severity, "updated_at": now,
            "search_text": search_text(inc.title, inc.entity),
            "first_seen": min(existing.first_seen, inc.first_seen),
            "last_seen": max(existing.last_seen, inc.last_seen)}
        if not existing.verdict_json:
            values["severity_rank"] = _rank(inc.severity)
        newer = inc.last_seen > stored_time(existing.last_seen)  # NaN compares False: no recurrence
        if existing.status == "closed" and newer:
            values.update(self._recurrence(conn, existing, inc, now))
        conn.execute(t.update().where(t.c.id == existing.id).values(**values))
        return int(existing.id)

    def _recurrence(self, conn: Connection, row: Any, inc: Incident, now: str) -> dict[str, Any]:
        """What newer activity does to a closed incident: the row's new values; the note and audit written."""
        seen = f"activity continued until {iso(inc.last_seen)}"
        subject = f"incident:{row.id}"
        if row.disposition == "false_positive":
            if row.activity_after_close == 0:
                self.add_note(conn, row.id, DETECTION, "activity",
                              f"{seen}; it stays closed as false_positive")
                self._audit.append(DETECTION, "incident.activity_after_close", subject,
                                   {"disposition": row.disposition, "last_seen": iso(inc.last_seen)}, conn=conn)
            return {"activity_after_close": row.activity_after_close + 1}
        note = self.add_note(conn, row.id, DETECTION, "reopen",
                             f"{seen}: reopened (it was closed as {row.disposition or 'unknown'})")
        self._audit.append(DETECTION, "incident.transition", subject, {
            "from": "closed", "to": "open", "reason": "recurrence", "disposition": row.disposition,
            "note": note.id, "last_seen": iso(inc.last_seen)}, conn=conn)
        return {"status": "open", "disposition": None, "closed_at": None, "closed_by": None,
                "status_changed_at": now, "version": row.version + 1, "activity_after_close": 0}

    def upsert_findings(self, conn: Connection, incident_id: int, items: Iterable[Finding]) -> None:
        """Insert or refresh findings by their stable key."""
        touched: set[int] = set()  # other incidents a finding left or lives in: their summaries change too
        for f in items:
            values = {
                "incident_id": incident_id, "detector": f.detector, "title": f.title, "severity": f.severity,
                "entities_json": _dumps(f.entities), "techniques_json": _dumps(list(f.techniques)),
                "first_seen": f.first_seen, "last_seen": f.last_seen, "count": f.count,
                "counts_json": _dumps(f.counts), "attributes_json": _dumps(f.attributes),
                "evidence_json": _dumps(f.evidence)}
            if self.sensor is not None:  # a writer that does not say which sensor it is leaves the name alone
                values["sensor"] = self.sensor
            key = f.key
            read = select(findings.c.id, findings.c.incident_id).where(findings.c.key == key)
            row = conn.execute(read).first()
            if row is None:
                new_id = insert_new(conn, findings, ("key",), {"key": key, **values})
                if new_id is not None:
                    if self.sensor is not None:
                        self._saw(conn, new_id, incident_id, f)
                    continue
                row = conn.execute(read).one()  # another sensor inserted it a moment ago
            # Another sensor's copy may be newer: the larger count stands (one conditional UPDATE, atomic).
            updated = conn.execute(findings.update().where(findings.c.key == key, findings.c.count <= f.count)
                                   .values(**values)).rowcount
            home = incident_id if updated else int(row.incident_id)  # where the finding lives now
            if home != row.incident_id or home != incident_id:
                touched.update({int(row.incident_id), home})  # their summaries name this finding's sensors
            if self.sensor is not None:
                self._saw(conn, int(row.id), home, f, moved=home != row.incident_id)
        for other in sorted(touched - {incident_id}):
            refresh_summary(conn, other)
        refresh_summary(conn, incident_id)

    def _saw(self, conn: Connection, finding_id: int, incident_id: int, f: Finding, *, moved: bool = False) -> None:
        """Record that this sensor saw finding `finding_id` (in incident `incident_id`): its own count and times.

        One upsert per flush (the larger count stands); `moved`: the finding just changed incident, and
        every sensor's row follows it there.
        """
        assert self.sensor is not None
        t = finding_sensors
        values = {"incident_id": incident_id, "count": f.count, "first_seen": f.first_seen, "last_seen": f.last_seen}
        insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(t).values(
            finding_id=finding_id, sensor=self.sensor, **values)
        conn.execute(insert.on_conflict_do_update(
            index_elements=["finding_id", "sensor"], set_={k: insert.excluded[k] for k in values},
            where=t.c.count <= insert.excluded["count"]))
        if moved:
            conn.execute(t.update().where(t.c.finding_id == finding_id, t.c.incident_id != incident_id)
                         .values(incident_id=incident_id))

    def sensors(self, incident_id: int) -> builtins.list[str]:
        """The sensors whose findings the incident holds, by name."""
        t = finding_sensors
        with self.store.engine.connect() as conn:
            return [str(s) for s in conn.execute(select(t.c.sensor).distinct().where(
                t.c.incident_id == incident_id).order_by(t.c.sensor)).scalars()]

    @staticmethod
    def finding_sensors(conn: Connection, incident_id: int) -> dict[int, builtins.list[str]]:
        """For each finding id of the incident, the sensors that saw it, by name."""
        t = finding_sensors
        out: dict[int, builtins.list[str]] = {}
        for row in conn.execute(select(t.c.finding_id, t.c.sensor).where(t.c.incident_id == incident_id)
                                .order_by(t.c.finding_id, t.c.sensor)):
            out.setdefault(int(row.finding_id), []).append(str(row.sensor))
        return out

    def load(self, conn: Connection, incident_id: int) -> Incident | None:
        """The incident with every stored finding."""
        row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
        if row is None:
            return None
        inc = Incident(row.fingerprint, row.entity, row.title, row.severity, stored_time(row.first_seen),
                       stored_time(row.last_seen), id=row.id, status=row.status)
        seen_by = self.finding_sensors(conn, incident_id)
        for frow in conn.execute(select(findings).where(findings.c.incident_id == incident_id)
                                 .order_by(findings.c.first_seen)):
            try:
                inc.findings[frow.key] = finding_from_row(frow)
                if frow.id in seen_by:
                    inc.sensors[frow.key] = seen_by[frow.id]
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
            search_text=search_text(inc.title, inc.entity), verdict_json=inc.verdict.model_dump_json(), severity_rank=_rank(inc.verdict.severity),
            updated_at=self.clock().isoformat()))

    def list(self, limit: int = 1000) -> list[Incident]:
        """Incidents, most severe and most recent first, with their findings."""
        with self.store.engine.connect() as conn:
            ids = [r.id for r in conn.execute(select(incidents.c.id).order_by(incidents.c.last_seen.desc()).limit(limit))]
            out = [inc for i in ids if (inc := self.load(conn, i)) is not None]
        out.sort(key=list_order)
        return out

    def get(self, incident_id: int) -> Incident | None:
        """One incident by id."""
        with self.store.engine.connect() as conn:
            return self.load(conn, incident_id)

    def record_run(self, conn: Connection, started: str, actor: str, summary: dict[str, Any]) -> None:
        """Keep a summary of one ingest run."""
        conn.execute(ingest_runs.insert().values(started_at=started, finished_at=self.clock().isoformat(),
                                                 actor=actor, summary_json=_dumps(summary)))

    # ------------------------------------------------------------------ lifecycle (rules: app/incident_lifecycle.py)

    @staticmethod
    def lock(conn: Connection, incident_id: int) -> None:
        """Take the write lock before the first read of a change (see ReviewQueue._lock for why)."""
        conn.execute(update(incidents).where(incidents.c.id == incident_id).values(version=incidents.c.version))

    @staticmethod
    def state(conn: Connection, incident_id: int) -> IncidentState | None:
        """The incident's lifecycle columns, or None when there is no such incident."""
        if not 0 < incident_id <= MAX_ID:
            return None
        t = incidents
        row = conn.execute(select(t.c.id, t.c.status, t.c.assignee, t.c.disposition, t.c.closed_at, t.c.closed_by,
                                  t.c.status_changed_at, t.c.version, t.c.activity_after_close)
                           .where(t.c.id == incident_id)).first()
        return _state_from_row(row) if row is not None else None

    def write_state(self, conn: Connection, seen: IncidentState, **values: Any) -> bool:
        """Conditionally update the lifecycle columns of `seen`; False when someone changed it first."""
        result = conn.execute(update(incidents).where(
            incidents.c.id == seen.id, incidents.c.version == seen.version, incidents.c.status == seen.status,
        ).values(version=seen.version + 1, updated_at=self.clock().isoformat(), **values))
        return result.rowcount == 1

    def add_note(self, conn: Connection, incident_id: int, principal: str, kind: str, text: str) -> IncidentNote:
        """Append one note to the incident."""
        now = self.clock().isoformat()
        key = conn.execute(incident_notes.insert().values(
            incident_id=incident_id, time=now, principal=principal, kind=kind, text=text)).inserted_primary_key
        assert key is not None
        return IncidentNote(int(key[0]), incident_id, now, principal, kind, text)

    @staticmethod
    def notes_in(conn: Connection, incident_id: int) -> builtins.list[IncidentNote]:
        """The incident's notes, oldest first."""
        n = incident_notes
        return [IncidentNote(int(r.id), int(r.incident_id), r.time, r.principal, r.kind, r.text)
                for r in conn.execute(select(n).where(n.c.incident_id == incident_id).order_by(n.c.id))]

    def lifecycle(self, incident_id: int) -> tuple[IncidentState, builtins.list[IncidentNote]] | None:
        """The incident's lifecycle state and notes, or None when there is no such incident."""
        with self.store.engine.connect() as conn:
            state = self.state(conn, incident_id)
            return (state, self.notes_in(conn, incident_id)) if state is not None else None

    # ------------------------------------------------------------------ the console's listing

    def search(self, query: IncidentQuery) -> IncidentPage:
        """One page of incidents matching `query`, newest activity first, and the total that match."""
        t = incidents
        # Two steps: the page's ids and the total come from the covering listing index alone; only
        # the page's own rows are then read in full (their findings are folded into summary_json).
        ids_q = select(t.c.id).where(*_conditions(query)).order_by(t.c.last_seen.desc(), t.c.id.desc())
        count_q = select(func.count()).select_from(t).where(*_conditions(query, counting=True))
        with self.store.engine.connect() as conn:
            ids = [int(i) for i in conn.execute(ids_q.limit(query.limit).offset(query.offset)).scalars()]
            total = int(conn.execute(count_q).scalar_one())
            by_id = {int(r.id): r for r in conn.execute(
                select(t.c.id, t.c.title, t.c.entity, t.c.severity, t.c.severity_rank, t.c.status, t.c.disposition,
                       t.c.assignee, t.c.first_seen, t.c.last_seen, t.c.summary_json).where(t.c.id.in_(ids)))
            } if ids else {}
        rows = [_listing_row(by_id[i]) for i in ids if i in by_id]  # one deleted meanwhile is left out
        return IncidentPage(rows, total, query.limit, query.offset, query)
