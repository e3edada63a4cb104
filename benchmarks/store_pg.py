"""The shared store under load: PostgreSQL beside SQLite, through the agent's own store code.

    .venv/bin/python benchmarks/store_pg.py                      # a throwaway PostgreSQL (needs root), SQLite beside it
    .venv/bin/python benchmarks/store_pg.py --pg-url postgresql+psycopg://ws@db/bench   # an existing, empty database
    .venv/bin/python benchmarks/store_pg.py --incidents 20000 --findings 2000           # quicker

Three figures per engine:
  findings/s    N sensor processes (1, 4, 16) each storing batches of findings the way a flush does
                (one transaction: correlate against the store, upsert incidents, upsert findings)
  audit/s       appends per second from 1 and 4 processes into one chain (every append locks its head)
  list latency  the console's incident page (IncidentStore.search) over --incidents incidents, p50/p95,
                unfiltered, by status, by free text and by detector

The throwaway server is Debian's PostgreSQL started by tests/support/postgres.py (fsync off, as in the
tests): absolute figures flatter a production server with fsync on; the ratios and the bottleneck hold.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:  # tests/support starts the throwaway PostgreSQL
    sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import insert

from watchstander.agent.clock import system_clock
from watchstander.agent.detection.correlator import Correlator
from watchstander.agent.errors import StoreError
from watchstander.agent.models import Finding
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.incidents import IncidentQuery, IncidentStore, findings, incidents, search_text
from watchstander.agent.store.schema import open_store

BATCH = 50
DETECTORS = ("portscan", "bruteforce", "sweep", "beacon", "exfil")


def _sensor(url: str, sensor: int, count: int, go: Any, out: Any) -> None:
    """One sensor process: `count` findings in flush-sized transactions; reports its elapsed time."""
    store = open_store(url, migrate=False)
    repo = IncidentStore(store, system_clock, sensor=f"bench-{sensor}")
    base = 1_790_000_000.0
    made = [Finding(DETECTORS[i % 5], "bench", "medium",
                    {"attacker": f"10.{sensor}.{(i // 250) % 250}.{i % 250}", "victim": f"192.0.2.{i % 200}"},
                    ("T1046",), base + i, base + i + 5, 10) for i in range(count)]
    out.put("ready")
    go.wait(120)
    start = time.perf_counter()
    try:
        for i in range(0, count, BATCH):
            with store.begin() as conn:
                correlator = Correlator(21600.0, lambda entity, since: repo.find_open(conn, entity, since))
                for inc in correlator.add_all(made[i:i + BATCH]):
                    repo.upsert_findings(conn, repo.upsert_incident(conn, inc), inc.findings.values())
        out.put(time.perf_counter() - start)
    except StoreError as exc:
        out.put(f"error: {exc}")
    finally:
        store.close()


def _appender(url: str, count: int, go: Any, out: Any) -> None:
    store = open_store(url, migrate=False)
    audit = AuditLog(store, system_clock)
    out.put("ready")
    go.wait(120)
    start = time.perf_counter()
    try:
        for n in range(count):
            audit.append("uid:0:bench", "bench.append", "bench", {"n": n})
        out.put(time.perf_counter() - start)
    except StoreError as exc:
        out.put(f"error: {exc}")
    finally:
        store.close()


def _parallel(target: Any, args_of: Any, procs: int) -> float:
    """Run `procs` workers started together; the wall time from the start signal to the last finish."""
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=target, args=(*args_of(i), go, out)) for i in range(procs)]
    for w in workers:
        w.start()
    for _ in workers:
        assert out.get(timeout=300) == "ready"
    start = time.perf_counter()
    go.set()
    results = [out.get(timeout=3600) for _ in workers]
    wall = time.perf_counter() - start
    errors = [r for r in results if isinstance(r, str)]
    if errors:
        raise SystemExit(f"a worker failed: {errors[0]}")
    for w in workers:
        w.join(60)
    return wall


def findings_rate(url: str, procs: int, per_proc: int) -> float:
    """Findings stored per second by `procs` sensors at once."""
    wall = _parallel(_sensor, lambda i: (url, i, per_proc), procs)
    return procs * per_proc / wall


def audit_rate(url: str, procs: int, per_proc: int) -> float:
    """Audit appends per second by `procs` writers into one chain."""
    wall = _parallel(_appender, lambda _i: (url, per_proc), procs)
    return procs * per_proc / wall


def fill(url: str, count: int) -> None:
    """`count` incidents with one finding each, written in bulk (the listing reads only what ingest wrote)."""
    store = open_store(url, migrate=False)
    now = system_clock().isoformat()
    base = 1_790_000_000.0
    chunk = 5000
    for start in range(0, count, chunk):
        rows, frows = [], []
        for i in range(start, min(count, start + chunk)):
            entity = f"attacker:10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
            title = f"{DETECTORS[i % 5]} from {entity}"
            rows.append({"id": i + 1, "fingerprint": f"bench{i:027d}", "entity": entity, "title": title,
                         "severity": "medium", "status": ("open", "acknowledged", "closed")[i % 3],
                         "first_seen": base + i, "last_seen": base + i + 60, "created_at": now, "updated_at": now,
                         "severity_rank": i % 5, "asset_text": entity.lower(), "search_text": search_text(title, entity),
                         "summary_json": f'{{"detectors": ["{DETECTORS[i % 5]}"], "findings": 1}}'})
            frows.append({"key": f"benchf{i:018d}", "incident_id": i + 1, "detector": DETECTORS[i % 5],
                          "title": title, "severity": "medium", "entities_json": "{}", "techniques_json": "[]",
                          "first_seen": base + i, "last_seen": base + i + 60, "count": 1, "counts_json": "{}",
                          "attributes_json": "{}", "evidence_json": "[]", "sensor": f"bench-{i % 4}"})
        with store.begin() as conn:
            conn.execute(insert(incidents), rows)
            conn.execute(insert(findings), frows)
    if store.engine.dialect.name == "postgresql":
        with store.begin() as conn:
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('incidents', 'id'), (SELECT max(id) FROM incidents))")
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('findings', 'id'), (SELECT max(id) FROM findings))")
            conn.exec_driver_sql("ANALYZE")
    else:
        store.maintain()
    store.close()


def list_latency(url: str, repeats: int) -> dict[str, tuple[float, float]]:
    """p50 and p95 (ms) of one listing page per filter."""
    store = open_store(url, migrate=False)
    repo = IncidentStore(store, system_clock)
    queries = {"page 1": IncidentQuery(), "status=open": IncidentQuery(statuses=frozenset({"open"})),
               "text": IncidentQuery(text="10.3.1"), "detector": IncidentQuery(detector="beacon"),
               "sensor": IncidentQuery(sensor="bench-2"), "deep page": IncidentQuery(offset=50_000)}
    out: dict[str, tuple[float, float]] = {}
    for name, query in queries.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            repo.search(query)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        out[name] = (statistics.median(times), times[int(len(times) * 0.95) - 1])
    store.close()
    return out


def run_engine(label: str, new_url: Any, args: argparse.Namespace) -> None:
    """Every figure for one engine; `new_url()` gives a fresh, migrated store each time."""
    print(f"\n== {label}")
    for procs in args.procs:
        if procs > 1 and label.startswith("SQLite"):
            print(f"findings/s  {procs:>2} sensor process(es): n/a (one agent per SQLite store)")
            continue
        url = new_url()
        rate = findings_rate(url, procs, max(BATCH, args.findings // procs))
        print(f"findings/s  {procs:>2} sensor process(es): {rate:9,.0f}")
    for procs in (1, 4):
        url = new_url()
        rate = audit_rate(url, procs, args.appends // procs)
        print(f"audit/s     {procs:>2} writer process(es):  {rate:9,.0f}")
    url = new_url()
    start = time.perf_counter()
    fill(url, args.incidents)
    print(f"filled {args.incidents:,} incidents + findings in {time.perf_counter() - start:.1f} s")
    for name, (p50, p95) in list_latency(url, args.repeats).items():
        print(f"list {name:<12} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")


def main() -> int:
    """Parse the arguments and print the figures for SQLite and PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", help="an existing PostgreSQL server's URL (a database per run is made on it "
                                         "only when this is omitted)")
    parser.add_argument("--findings", type=int, default=8000, help="findings per run, split over the processes")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--appends", type=int, default=4000, help="audit appends per run")
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ws-bench-"))
    counter = iter(range(1_000_000))

    def sqlite_url() -> str:
        url = f"sqlite:///{tmp / f'store{next(counter)}.db'}"
        open_store(url).close()
        return url

    if not args.skip_sqlite:
        run_engine("SQLite (WAL, synchronous=FULL)", sqlite_url, args)
    server = None
    if args.pg_url:
        def pg_url() -> str:
            open_store(args.pg_url).close()
            return str(args.pg_url)
        print("(--pg-url: every run shares that database; give an empty one)")
    else:
        from support.postgres import start_server, why_unavailable

        reason = why_unavailable()
        if reason:
            print(f"PostgreSQL skipped: {reason}")
            return 0
        server = start_server()

        def pg_url() -> str:
            url = server.url(server.create_database())
            open_store(url).close()
            return url
    try:
        run_engine("PostgreSQL (fsync off)" if server else "PostgreSQL", pg_url, args)
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
