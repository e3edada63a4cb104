"""Incident listing and detail latency at production scale, SQLite beside PostgreSQL (issue 11).

    .venv/bin/python benchmarks/store_scale.py                       # 100,000 incidents, 1,000,000 findings, both engines
    .venv/bin/python benchmarks/store_scale.py --quick               # 10,000 / 100,000, 5 repeats (under a minute)
    .venv/bin/python benchmarks/store_scale.py --engines sqlite --incidents 20000 --findings 200000 --repeat 30
    .venv/bin/python benchmarks/store_scale.py --pg-url postgresql+psycopg://ws@db/bench   # an existing, empty database

Each engine gets a store made by the real migrations (open_store), then filled in bulk with rows shaped
like the ones IncidentStore writes (summary_json, severity_rank, asset_text, search_text, verdicts,
sensors, most incidents closed and assigned, the recent ones open): SQLAlchemy Core executemany in
large batches on SQLite, COPY through psycopg on PostgreSQL (a throwaway server started like the
tests do, fsync off). Statistics are then brought up to date the way the running agent keeps them
(PRAGMA optimize on SQLite, VACUUM ANALYZE standing in for autovacuum on PostgreSQL).

Every query shape the console and `incidents list` run goes through query_from_params and
IncidentStore.search, timed --repeat times after one warm-up (warm cache): p50/p95/max in ms. Each
search is three statements (the page's ids, the total, the page's rows); they are captured and timed
alone as well, so the table shows which one dominates. The slowest shape's statements are then
EXPLAINed (QUERY PLAN on SQLite, ANALYZE with BUFFERS on PostgreSQL), and the candidate fixes in
FIXES are applied to the benchmark's own database only, each measured before and after, then undone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:  # tests/support starts the throwaway PostgreSQL
    sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import Connection, event, func, select, tuple_

from watchstander.agent.app.incident_query import query_from_params
from watchstander.agent.clock import system_clock
from watchstander.agent.models import SEVERITIES, Provenance, TriageVerdict
from watchstander.agent.store import incidents as incident_tables
from watchstander.agent.store.engine import Store
from watchstander.agent.store.incidents import IncidentStore, findings, incidents, search_text
from watchstander.agent.store.schema import open_store

# Every sensor that saw a finding (schema version 4 of "core"); None on a release without the table.
FINDING_SENSORS: Any = getattr(incident_tables, "finding_sensors", None)

# timed() and pct() are incident_queries.py's; not imported from there because that script builds an App,
# whose import (triage, langchain) takes seconds, ten times what this script's own imports cost.


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], list[float], Any]:
    """Wall and CPU milliseconds of each of `runs` calls after one warm-up, and the last result."""
    result = fn()
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu, result


def pct(samples: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


NOW = 1_795_000_000.0  # 2026-11-18: the newest activity in the store
SPAN_DAYS = 180
RECENT_DAYS = 14  # incidents younger than this are mostly still open
ANALYSTS = ("olga", "abe", "mina", "tomas", "kwame", "lea", "ivan", "sana")
SENSORS = {"edge-fw-1": 40, "dmz-tap-1": 25, "core-sw-2": 20, "branch-lyon": 10, "branch-oslo": 5}
DETECTORS: dict[str, tuple[int, tuple[str, ...], str]] = {  # weight, techniques, title
    "portscan": (30, ("T1046",), "Vertical port scan from"),
    "bruteforce": (25, ("T1110.001",), "SSH password guessing from"),
    "ids": (15, ("T1190",), "IDS alert for exploit attempt from"),
    "sweep": (10, ("T1018",), "ICMP echo sweep from"),
    "synflood": (5, ("T1498.001",), "SYN flood from"),
    "lateral": (5, ("T1021.004",), "Lateral SSH movement from"),
    "dnstunnel": (3, ("T1071.004",), "DNS tunnelling by"),
    "snmp_auth": (3, ("T1078",), "SNMP authentication failures from"),
    "arpspoof": (2, ("T1557.002",), "ARP spoofing by"),
    "linkflap": (2, (), "Link flapping near"),
}
BATCH_INCIDENTS = 5000
# The shapes operators run (console filters, `incidents list` options), as request parameters.
SHAPES: dict[str, dict[str, Any]] = {
    "open, first page (by last_seen)": {"status": "open"},
    "all, first page (no filter)": {},
    "open+ack, severity >= high": {"status": ["open", "acknowledged"], "min_severity": "high"},
    "severity = critical": {"severity": ["critical"]},
    "status = closed": {"status": "closed"},
    "assignee = olga": {"assignee": "olga"},
    "open, assignee = olga": {"status": "open", "assignee": "olga"},
    "detector = portscan (common)": {"detector": "portscan"},
    "detector = arpspoof (rare)": {"detector": "arpspoof"},
    "sensor = edge-fw-1 (common)": {"sensor": "edge-fw-1"},
    "sensor = branch-oslo (rare)": {"sensor": "branch-oslo"},
    "search = an attacker IP": {"search": "@attacker"},
    "search = the busiest attacker IP": {"search": "@busiest"},
    "asset = a victim IP": {"asset": "@victim"},
    "search, no match": {"search": "nothing-like-this"},
    "last 24 h": {"seen_after": NOW - 86400},
    "deep page (offset 5,000)": {"offset": 5000},
    "closed, deep page (offset 5,000)": {"status": "closed", "offset": 5000},
}
STATEMENTS = ("ids", "count", "rows")  # the order IncidentStore.search runs them in


@dataclass
class Fill:
    """What the fill wrote that the queries need: sample values and an incident with 10 findings."""

    incidents: int = 0
    findings: int = 0
    attacker: str = ""
    busiest: str = ""
    victim: str = ""
    ten_findings_id: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class Timing:
    """One measured row: wall-clock samples, and the per-statement medians when it is a search."""

    wall: list[float]
    rows: int | str = ""
    total: int | str = ""
    parts: dict[str, float] = field(default_factory=dict)


def _verdicts() -> dict[str, str]:
    """One valid baseline verdict per severity (the rows' verdict_json, as triage stores it)."""
    out = {}
    for sev in SEVERITIES:
        out[sev] = TriageVerdict(
            severity=sev, confidence=0.7, disposition="needs_review", techniques=("T1046",),
            summary="Repeated connection attempts from one external address against several hosts.",
            rationale="Baseline rules: the pattern matches the detector's signature; no allow-list entry applies; "
                      "the source has no prior benign history in this store.",
            evidence_refs=("finding:1",), provenance=Provenance(analyst="baseline", analyst_version="1.4"),
        ).model_dump_json()
    return out


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """`parts` positive counts summing to `total`, skewed like real incidents (most small, a few large)."""
    mean = total / parts
    counts = [max(1, round(rng.lognormvariate(0, 0.6) * mean * 0.84)) for _ in range(parts)]
    diff = total - sum(counts)
    while diff:
        i = rng.randrange(parts)
        step = 1 if diff > 0 else -1
        if counts[i] + step >= 1:
            counts[i] += step
            diff -= step
    return counts


Row = tuple[Any, ...]
INCIDENT_COLUMNS = ("id", "fingerprint", "entity", "title", "severity", "status", "first_seen", "last_seen",
                    "created_at", "updated_at", "verdict_json", "assignee", "disposition", "closed_at", "closed_by",
                    "status_changed_at", "version", "activity_after_close", "severity_rank", "asset_text",
                    "search_text", "summary_json")
FINDING_COLUMNS = ("id", "key", "incident_id", "detector", "title", "severity", "entities_json", "techniques_json",
                   "first_seen", "last_seen", "count", "counts_json", "attributes_json", "evidence_json", "sensor")
SEEN_COLUMNS = ("finding_id", "incident_id", "sensor", "count", "first_seen", "last_seen")


def generate(n_incidents: int, n_findings: int, seed: int = 11) -> Iterator[tuple[list[Row], list[Row], list[Row],
                                                                                   Fill]]:
    """Batches of incident, finding and finding-sensor rows (tuples in the *_COLUMNS order), deterministic.

    The Fill is complete after the last batch. Plain rng.random() arithmetic rather than randrange and
    friends: generating a million findings is half of the fill's time.
    """
    rng = random.Random(seed)
    r = rng.random
    verdicts = _verdicts()
    names = list(DETECTORS)
    det_weights = [DETECTORS[d][0] for d in names]
    techniques_json = {d: json.dumps(list(DETECTORS[d][1])) for d in names}
    sensor_names, sensor_weights = list(SENSORS), list(SENSORS.values())
    # Attackers recur (a few addresses cause many incidents); victims are the internal hosts.
    attackers = [f"{rng.choice((198, 203, 45, 185))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                 for _ in range(max(10, n_incidents // 3))]
    victims = [f"10.20.{rng.randrange(64)}.{rng.randrange(1, 255)}" for _ in range(4000)]
    n_victims = len(victims)
    counts = _split(n_findings, n_incidents, rng)
    fill = Fill(n_incidents, n_findings, statuses={s: 0 for s in ("open", "acknowledged", "closed")})
    created = "2026-06-01T00:00:00+00:00"
    inc_rows: list[Row] = []
    find_rows: list[Row] = []
    seen_rows: list[Row] = []
    finding_id = 0
    for i in range(1, n_incidents + 1):
        # A third of incidents come from a few persistent sources (the busiest has ~1% of all), the rest spread.
        attacker = attackers[int(len(attackers) * r() ** 3)] if r() < 0.3 else rng.choice(attackers)
        entity = f"attacker:{attacker}"
        age = r() * (SPAN_DAYS if r() < 0.9 else RECENT_DAYS) * 86400
        last = NOW - age
        recent = age < RECENT_DAYS * 86400
        status = rng.choices(("open", "acknowledged", "closed"), weights=(60, 20, 20) if recent else (3, 1, 96))[0]
        fill.statuses[status] += 1
        if status == "closed":
            assignee: str | None = rng.choice(ANALYSTS) if r() < 0.95 else None
        elif status == "acknowledged":
            assignee = rng.choice(ANALYSTS)
        else:
            assignee = rng.choice(ANALYSTS) if r() < 0.3 else None
        disposition = rng.choices(("false_positive", "benign", "true_positive"), weights=(50, 30, 20))[0] \
            if status == "closed" else None
        sev = rng.choices(SEVERITIES, weights=(10, 30, 35, 20, 5))[0]
        dets = list(dict.fromkeys(rng.choices(names, weights=det_weights, k=rng.choices((1, 2, 3), (70, 22, 8))[0])))
        sensors = [rng.choices(sensor_names, weights=sensor_weights)[0]]
        if r() < 0.2:
            sensors.append(rng.choice(sensor_names))
        n = counts[i - 1]
        first = last - 60 - r() * 6 * 3600
        hit: set[str] = set()
        seen_sensors: set[str] = set()
        for k in range(n):
            det = dets[k % len(dets)]
            victim = victims[int(r() * n_victims)]
            sensor = sensors[k % len(sensors)]
            hit.add(victim)
            seen_sensors.add(sensor)
            f_first = first + r() * (last - first)
            events = 1 + int(r() * 4999)
            finding_id += 1
            seen_rows.append((finding_id, i, sensor, events, f_first, last))
            if len(sensors) > 1 and r() < 0.3 and sensors[(k + 1) % len(sensors)] != sensor:
                other = sensors[(k + 1) % len(sensors)]  # the other sensor saw it too, a smaller copy
                seen_sensors.add(other)
                seen_rows.append((finding_id, i, other, max(1, events // 2), f_first, last))
            find_rows.append((
                finding_id, f"{i:016x}{k:08x}", i, det, f"{det} from {attacker}", sev,
                f'{{"attacker": "{attacker}", "victim": "{victim}"}}', techniques_json[det], f_first,
                f_first + r() * (last - f_first), events, f'{{"events": {events}}}',
                f'{{"ports": [22, 80, 443, {1024 + int(r() * 64000)}], "proto": "tcp"}}',
                (f'["{attacker} -> {victim}:22 SYN", "{attacker} -> {victim}:443 SYN", '
                f'"{events} packets in {int(last - f_first)} s"]'), sensor))
        if n == 10 and not fill.ten_findings_id:
            fill.ten_findings_id = i
        title = f"{DETECTORS[dets[0]][2]} {attacker}"
        seen_dets = dets[:n]
        summary = {"detectors": sorted(seen_dets), "techniques": sorted({t for d in seen_dets for t in DETECTORS[d][1]}),
                   "findings": n, "entities": {"attacker": [attacker], "victim": sorted(hit)},
                   "sensors": sorted(seen_sensors)}
        closed = status == "closed"
        inc_rows.append((
            i, f"{i:032x}", entity, title, sev, status, first, last, created, created,
            verdicts[sev] if r() < 0.8 else None, assignee, disposition,
            "2026-11-01T00:00:00+00:00" if closed else None, f"uid:1000:{assignee}" if closed and assignee else None,
            created if status != "open" else None, 1 + (status != "open"), 0, SEVERITIES.index(sev),
            "\n".join(sorted({entity, attacker, *hit})).lower()[:8000], search_text(title, entity),
            json.dumps(summary, sort_keys=True)))
        if i == n_incidents // 2:
            fill.attacker, fill.victim = attacker, min(hit)
        if i == n_incidents:
            fill.busiest = attackers[0]
        if len(inc_rows) >= BATCH_INCIDENTS or i == n_incidents:
            yield inc_rows, find_rows, seen_rows, fill
            inc_rows, find_rows, seen_rows = [], [], []


def _bulk(conn: Connection, table: str, columns: tuple[str, ...], rows: list[Row]) -> None:
    """Insert `rows` in the open transaction: COPY through psycopg on PostgreSQL, one executemany on SQLite."""
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
    else:
        conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                             rows)


def _superuser(store: Store) -> bool:
    with store.engine.connect() as conn:
        return bool(conn.exec_driver_sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar())


def fill_store(store: Store, n_incidents: int, n_findings: int, progress: Callable[[str], None]) -> Fill:
    """Bulk-insert the generated rows into a migrated, empty store; statistics refreshed afterwards."""
    pg = store.engine.dialect.name == "postgresql"
    start, done, fill = time.perf_counter(), 0, Fill()
    replica = pg and _superuser(store)
    if pg:
        progress(f"  foreign-key triggers {'off during the load (consistent by construction)' if replica else 'on'}")
    for inc_rows, find_rows, seen_rows, fill in generate(n_incidents, n_findings):
        with store.begin() as conn:
            if replica:  # the rows reference each other correctly; checking a million keys one by one costs minutes
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            _bulk(conn, incidents.name, INCIDENT_COLUMNS, inc_rows)
            _bulk(conn, findings.name, FINDING_COLUMNS, find_rows)
            if FINDING_SENSORS is not None:
                _bulk(conn, FINDING_SENSORS.name, SEEN_COLUMNS, seen_rows)
        done += len(inc_rows)
        if done % (BATCH_INCIDENTS * 4) == 0 or done == n_incidents:
            elapsed = time.perf_counter() - start
            progress(f"  {done:,}/{n_incidents:,} incidents, {elapsed:.0f} s, "
                     f"~{elapsed / done * (n_incidents - done):.0f} s to go")
    t0 = time.perf_counter()
    if pg:
        with store.begin() as conn:
            for table in ("incidents", "findings"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM {table}))")
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    else:
        store.maintain()  # what the daemon's upkeep runs: PRAGMA optimize
    progress(f"  statistics refreshed in {time.perf_counter() - t0:.1f} s")
    return fill


class Capture:
    """The DBAPI statements an engine runs while `on` (to time and EXPLAIN a search's parts)."""

    def __init__(self, store: Store) -> None:
        self.on = False
        self.seen: list[tuple[str, Any]] = []
        event.listen(store.engine, "before_cursor_execute", self._before)

    def _before(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if self.on:
            self.seen.append((statement, parameters))

    def statements(self, fn: Callable[[], Any]) -> list[tuple[str, Any]]:
        """What `fn()` sends to the database, in order."""
        self.seen, self.on = [], True
        try:
            fn()
        finally:
            self.on = False
        return self.seen


def run_sql(store: Store, statement: str, parameters: Any) -> list[Any]:
    """One captured statement run again, every row fetched."""
    with store.engine.connect() as conn:
        return list(conn.exec_driver_sql(statement, parameters).fetchall())


def explain(store: Store, statement: str, parameters: Any) -> list[str]:
    """The plan of one statement: EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL."""
    if store.engine.dialect.name == "postgresql":
        return [str(r[0]) for r in run_sql(store, "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)]
    rows = run_sql(store, "EXPLAIN QUERY PLAN " + statement, parameters)
    depth: dict[int, int] = {0: -1}
    out = []
    for node, parent, _unused, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        out.append("  " * depth[node] + str(detail))
    return out


def params_for(shape: dict[str, Any], fill: Fill) -> dict[str, Any]:
    """The shape's request parameters with the sample addresses filled in."""
    subst = {"@attacker": fill.attacker, "@busiest": fill.busiest, "@victim": fill.victim}
    return {k: subst.get(v, v) if isinstance(v, str) else v for k, v in shape.items()}


def measure(store: Store, capture: Capture, fill: Fill, repeat: int, names: list[str] | None = None,
            progress: Callable[[str], None] = lambda _m: None) -> dict[str, Timing]:
    """Every shape (or those `names`), the keyset page, the detail load; one Timing each."""
    repo = IncidentStore(store, system_clock)
    out: dict[str, Timing] = {}
    for name, shape in SHAPES.items():
        if names is not None and name not in names:
            continue
        query = query_from_params(params_for(shape, fill))
        wall, _cpu, page = timed(partial(repo.search, query), repeat)
        parts = {}
        for label, (stmt, params) in zip(STATEMENTS, capture.statements(partial(repo.search, query))):
            part, _c, _r = timed(partial(run_sql, store, stmt, params), max(3, repeat // 2))
            parts[label] = statistics.median(part)
        out[name] = Timing(wall, len(page.rows), page.total, parts)
        progress(f"  {name}: p50 {statistics.median(wall):.1f} ms")
    if names is None or "deep page, keyset (not in the app)" in names:
        out["deep page, keyset (not in the app)"] = _keyset(store, repeat)
    if names is None:
        for label, fn in _details(repo, fill.ten_findings_id).items():
            wall, _cpu, _res = timed(fn, repeat)
            out[label] = Timing(wall, 1)
    return out


def _keyset(store: Store, repeat: int) -> Timing:
    """The page at offset 5,000 reached by keyset (last_seen, id) < the previous page's last row."""
    t = incidents
    order = (t.c.last_seen.desc(), t.c.id.desc())
    with store.engine.connect() as conn:
        key = conn.execute(select(t.c.last_seen, t.c.id).order_by(*order).limit(1).offset(4999)).first()
    if key is None:
        return Timing([0.0], 0)
    page_q = select(t.c.id).where(tuple_(t.c.last_seen, t.c.id) < tuple_(key.last_seen, key.id)).order_by(*order)

    def page() -> list[int]:
        with store.engine.connect() as conn:
            return list(conn.execute(page_q.limit(50)).scalars())

    wall, _cpu, ids = timed(page, repeat)
    return Timing(wall, len(ids))


def _details(repo: IncidentStore, incident_id: int) -> dict[str, Callable[[], Any]]:
    """The incident detail reads (CLI `incidents show`, the console's incident page)."""
    return {"detail: IncidentStore.get (10 findings)": lambda: repo.get(incident_id),
            "detail: get + lifecycle + sensors": lambda: (repo.get(incident_id), repo.lifecycle(incident_id),
                                                          repo.sensors(incident_id))}


@dataclass(frozen=True)
class Fix:
    """A candidate index or statistics change, tried on the benchmark's database only, then undone."""

    why: str
    shapes: tuple[str, ...]
    apply: dict[str, tuple[str, ...]]
    undo: dict[str, tuple[str, ...]]


FIXES: dict[str, Fix] = {
    "ix_incidents_status_listing": Fix(
        "a listing index led by status: a status filter's page and total become one range of the index",
        ("open, first page (by last_seen)", "open+ack, severity >= high", "status = closed",
         "open, assignee = olga", "closed, deep page (offset 5,000)"),
        {"sqlite": ("CREATE INDEX ix_bench_status ON incidents (status, last_seen, id, severity_rank, assignee)",),
         "postgresql": ("CREATE INDEX ix_bench_status ON incidents (status, last_seen, id, severity_rank, assignee)",)},
        {"sqlite": ("DROP INDEX ix_bench_status",), "postgresql": ("DROP INDEX ix_bench_status",)}),
    "pg_trgm on search_text/asset_text": Fix(
        "trigram GIN indexes: LIKE '%x%' on the texts without reading every row (PostgreSQL only)",
        ("search = an attacker IP", "search = the busiest attacker IP", "asset = a victim IP", "search, no match"),
        {"postgresql": ("CREATE EXTENSION IF NOT EXISTS pg_trgm",
                        "CREATE INDEX ix_bench_search_trgm ON incidents USING gin (search_text gin_trgm_ops)",
                        "CREATE INDEX ix_bench_asset_trgm ON incidents USING gin (asset_text gin_trgm_ops)")},
        {"postgresql": ("DROP INDEX ix_bench_search_trgm", "DROP INDEX ix_bench_asset_trgm")}),
    # Last: not undone. The agent's upkeep (Store.maintain) runs PRAGMA optimize, which analyses only the
    # tables its own connection has queried, so a store can run for long without statistics on incidents.
    "ANALYZE (every table)": Fix(
        "statistics for every table and index, where PRAGMA optimize left some out (SQLite only)",
        tuple(SHAPES), {"sqlite": ("ANALYZE",)}, {"sqlite": ()}),
}


def _ddl(store: Store, statements: tuple[str, ...]) -> None:
    """Run `statements`; on PostgreSQL then VACUUM ANALYZE as autovacuum would (SQLite's statistics stay as
    the agent's PRAGMA optimize left them, so a what-if index is compared under the same statistics)."""
    with store.begin() as conn:
        for sql in statements:
            conn.exec_driver_sql(sql)
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE incidents")


def try_fixes(store: Store, capture: Capture, fill: Fill, repeat: int, before: dict[str, Timing]) -> list[str]:
    """Each fix applied, its shapes measured, undone; report lines (p50 before -> after)."""
    dialect = store.engine.dialect.name
    lines = []
    for name, fix in FIXES.items():
        if dialect not in fix.apply:
            continue
        t0 = time.perf_counter()
        _ddl(store, fix.apply[dialect])
        built = time.perf_counter() - t0
        after = measure(store, capture, fill, repeat, list(fix.shapes))
        _ddl(store, fix.undo[dialect])
        lines.append(f"what-if {name} ({dialect}, built in {built:.1f} s): {fix.why}")
        for shape in fix.shapes:
            b, a = before[shape], after[shape]
            lines.append(f"    {shape:<36} p50 {statistics.median(b.wall):8.2f} -> {statistics.median(a.wall):8.2f} ms"
                         f"   p95 {pct(b.wall, 95):8.2f} -> {pct(a.wall, 95):8.2f} ms   "
                         f"(count {b.parts.get('count', 0):.2f} -> {a.parts.get('count', 0):.2f} ms)")
    return lines


CAP = 1001  # "1,000+" in the page header instead of the exact total


def query_what_ifs(store: Store, capture: Capture, fill: Fill, repeat: int, before: dict[str, Timing]) -> list[str]:
    """Statement rewrites measured beside the app's own: a capped total, and the sensor page as EXISTS."""
    repo = IncidentStore(store, system_clock)
    lines = [f"what-if capped total (count at most {CAP:,} matches, shown as '1,000+'): count statement p50 ms"]
    ranked = sorted((n for n in before if before[n].parts.get("count")), key=lambda n: -before[n].parts["count"])
    for name in ranked[:6]:
        query = query_from_params(params_for(SHAPES[name], fill))
        stmt, params = capture.statements(partial(repo.search, query))[1]
        _head, _sep, where = " ".join(stmt.split()).partition(" FROM ")
        capped = f"SELECT count(*) FROM (SELECT 1 FROM {where} LIMIT {CAP}) AS capped"
        wall, _c, got = timed(partial(run_sql, store, capped, params), repeat)
        lines.append(f"    {name:<36} {before[name].parts['count']:8.2f} -> {statistics.median(wall):8.2f}"
                     f"   (total {before[name].total} -> {got[0][0]})")
    if FINDING_SENSORS is not None:
        t, fs = incidents, FINDING_SENSORS
        lines.append("what-if sensor page as EXISTS (walk the listing index in order, probe finding_sensors per "
                     "incident, stop after 50; the detector filter's page already does this): ids statement p50 ms")
        for name in (n for n in before if SHAPES.get(n, {}).get("sensor")):
            sensor = SHAPES[name]["sensor"]
            page_q = (select(t.c.id).where(select(fs.c.id).where(fs.c.incident_id == t.c.id, fs.c.sensor == sensor)
                                           .exists())
                      .order_by(t.c.last_seen.desc(), t.c.id.desc()).limit(50))

            def page(q: Any = page_q) -> list[int]:
                with store.engine.connect() as conn:
                    return list(conn.execute(q).scalars())

            wall, _c, ids = timed(page, repeat)
            lines.append(f"    {name:<36} {before[name].parts['ids']:8.2f} -> {statistics.median(wall):8.2f}"
                         f"   ({len(ids)} rows)")
    lines.append("what-if capped total with the findings filters as EXISTS (SQLite builds an IN list in full before "
                 "a LIMIT applies): count statement p50 ms")
    for name in (n for n in before if {"detector", "sensor"} & set(SHAPES.get(n, {}))):
        # Timed through the driver like the app's own count beside it (captured once, SQLAlchemy's part left out).
        stmt, params = capture.statements(partial(_capped_exists_count, store, SHAPES[name]))[0]
        wall, _c, got = timed(partial(run_sql, store, stmt, params), repeat)
        total = got[0][0]
        lines.append(f"    {name:<36} {before[name].parts['count']:8.2f} -> {statistics.median(wall):8.2f}"
                     f"   (total {before[name].total} -> {total})")
    return lines


def _capped_exists_count(store: Store, shape: dict[str, Any]) -> int:
    """count(*) over at most CAP incidents with a finding of the shape's detector, or seen by its sensor."""
    t = incidents
    if "detector" in shape:
        probe = select(findings.c.id).where(findings.c.incident_id == t.c.id, findings.c.detector == shape["detector"])
    else:
        fs = FINDING_SENSORS
        probe = select(fs.c.id).where(fs.c.incident_id == t.c.id, fs.c.sensor == shape["sensor"])
    capped = select(t.c.id).where(probe.exists()).limit(CAP).subquery()
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(capped)).scalar_one())


def slowest_plans(store: Store, capture: Capture, fill: Fill, results: dict[str, Timing], top: int) -> list[str]:
    """The plans of the `top` slowest searches, each statement with its own time."""
    repo = IncidentStore(store, system_clock)
    ranked = sorted((n for n in results if n in SHAPES), key=lambda n: -statistics.median(results[n].wall))
    lines = []
    for name in ranked[:top]:
        query = query_from_params(params_for(SHAPES[name], fill))
        lines.append(f"--- {name}: p50 {statistics.median(results[name].wall):.1f} ms "
                     f"({', '.join(f'{k} {v:.1f}' for k, v in results[name].parts.items())} ms)")
        for label, (stmt, params) in zip(STATEMENTS, capture.statements(partial(repo.search, query))):
            lines.append(f"  [{label}] {' '.join(stmt.split())}")
            lines.append(f"      parameters {params}")
            lines.extend("      " + p for p in explain(store, stmt, params))
    return lines


def sizes(store: Store) -> str:
    """The database's size on disk, and on SQLite which tables the planner has statistics for."""
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "postgresql":
            return f"{conn.exec_driver_sql('SELECT pg_database_size(current_database())').scalar_one() / 1e6:,.0f} MB"
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        has_stats = conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first()
        analysed = sorted({str(r[0]) for r in conn.exec_driver_sql("SELECT tbl FROM sqlite_stat1")}) if has_stats \
            else []
        return f"{pages * size / 1e6:,.0f} MB, statistics (sqlite_stat1) on {', '.join(analysed) or 'no table'}"


def run_engine(label: str, url: str, args: argparse.Namespace) -> tuple[dict[str, Timing], list[str], Fill]:
    """Migrate, fill, measure, EXPLAIN and try the fixes on one engine; the timings and report lines."""
    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    progress(f"== {label}: migrating and filling {args.incidents:,} incidents / {args.findings:,} findings")
    store = open_store(url)
    try:
        t0 = time.perf_counter()
        fill = fill_store(store, args.incidents, args.findings, progress)
        filled = time.perf_counter() - t0
        report = [(f"{label}: filled in {filled:.1f} s ({args.findings / filled:,.0f} findings/s), {sizes(store)}; "
                  f"statuses {fill.statuses}")]
        progress(f"  measuring, {args.repeat} repetitions per shape after a warm-up")
        capture = Capture(store)
        results = measure(store, capture, fill, args.repeat, progress=progress)
        report.extend(slowest_plans(store, capture, fill, results, args.explain))
        if not args.no_fixes:
            progress("  trying the candidate fixes")
            report.extend(query_what_ifs(store, capture, fill, args.repeat, results))
            report.extend(try_fixes(store, capture, fill, args.repeat, results))
        return results, report, fill
    finally:
        store.close()


def table(results: dict[str, dict[str, Timing]]) -> list[str]:
    """Both engines side by side: wall p50/p95/max, and which statement dominates the search."""
    engines = list(results)
    head = f"{'query':<40} {'rows':>4} {'total':>7}"
    for e in engines:
        head += f" | {e + ' p50':>13} {'p95':>7} {'max':>7} {'ids/count/rows p50':>20} {'python':>6}"
    lines = [head, "-" * len(head)]
    names = list(dict.fromkeys(n for r in results.values() for n in r))
    for name in names:
        first = next(r[name] for r in results.values() if name in r)
        line = f"{name:<40} {first.rows!s:>4} {first.total!s:>7}"
        for e in engines:
            t = results[e].get(name)
            if t is None:
                line += f" | {'-':>13} {'-':>7} {'-':>7} {'':>20} {'':>6}"
                continue
            parts = "/".join(f"{t.parts[s]:.1f}" for s in STATEMENTS if s in t.parts)
            rest = f"{statistics.median(t.wall) - sum(t.parts.values()):.1f}" if t.parts else ""
            line += (f" | {statistics.median(t.wall):13.2f} {pct(t.wall, 95):7.2f} {max(t.wall):7.2f} {parts:>20}"
                     f" {rest:>6}")
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run each engine, print the side-by-side table and the plans."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--incidents", type=int, default=100_000)
    ap.add_argument("--findings", type=int, default=1_000_000)
    ap.add_argument("--engines", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    ap.add_argument("--repeat", type=int, default=20, help="timed runs per query after one warm-up")
    ap.add_argument("--quick", action="store_true", help="10,000 incidents, 100,000 findings, 5 repeats")
    ap.add_argument("--explain", type=int, default=2, help="EXPLAIN the N slowest searches")
    ap.add_argument("--no-fixes", action="store_true", help="skip the what-if indexes")
    ap.add_argument("--pg-url", help="an existing, empty PostgreSQL database instead of a throwaway server")
    ap.add_argument("--dir", type=Path, help="where the SQLite store goes (default: a temporary folder)")
    args = ap.parse_args(argv)
    if args.quick:
        args.incidents, args.findings, args.repeat = 10_000, 100_000, 5
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - {"sqlite", "postgresql"}
    if unknown or args.findings < args.incidents:
        ap.error(f"unknown engine(s) {sorted(unknown)}" if unknown else "--findings must be >= --incidents")
    started = time.perf_counter()
    print(f"Watchstander store at scale: {args.incidents:,} incidents, {args.findings:,} findings, "
          f"{args.repeat} runs per query after a warm-up")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} (1 min) {load[1]:.2f} (5 min) at start")
    results: dict[str, dict[str, Timing]] = {}
    reports: list[str] = []
    fill = Fill()
    with tempfile.TemporaryDirectory(prefix="ws-scale-") as tmp:
        folder = args.dir or Path(tmp)
        for engine in engines:
            if engine == "sqlite":
                db = folder / "scale.db"
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{db}{suffix}").unlink(missing_ok=True)
                results["SQLite"], lines, fill = run_engine("SQLite (WAL)", f"sqlite:///{db}", args)
                reports += lines
            else:
                outcome = _postgres(args)
                if isinstance(outcome, str):
                    reports.append(f"PostgreSQL skipped: {outcome}")
                    continue
                results["PostgreSQL"], lines, fill = outcome
                reports += lines
    print(f"sample values: attacker {fill.attacker}, busiest attacker {fill.busiest}, victim {fill.victim}, "
          f"detail incident {fill.ten_findings_id}")
    print("times in ms, wall clock; ids/count/rows: the search's three statements timed alone (p50, run through the "
          "driver, rows fetched);\npython: search p50 minus those (SQLAlchemy compiling the statements, building the "
          "page's rows from summary_json)")
    print("\n".join(table(results)))
    print()
    print("\n".join(reports))
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.2f} at the end")
    return 0


def _postgres(args: argparse.Namespace) -> tuple[dict[str, Timing], list[str], Fill] | str:
    """Run the PostgreSQL side on --pg-url or a throwaway server; the reason when it cannot run."""
    if args.pg_url:
        return run_engine("PostgreSQL", args.pg_url, args)
    from support.postgres import start_server, why_unavailable

    reason: str | None = why_unavailable()
    if reason:
        return reason
    server = start_server()
    try:
        return run_engine("PostgreSQL (fsync off)", server.url(server.create_database()), args)
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
