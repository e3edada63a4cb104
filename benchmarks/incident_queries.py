"""Latency of the console's incident listing (IncidentStore.search) on a realistic SQLite store.

Usage: python benchmarks/incident_queries.py [--incidents N] [--findings-per M] [--runs R] [--keep DIR]

Builds a store in a temporary folder through the real migrations (open_store), fills it with N
incidents and about N*M findings (bulk inserts of exactly the rows IncidentStore writes: severity
ranks, entity text, a share acknowledged, assigned or closed), then times each query shape R times
after one warm-up and prints p50/p95/max in milliseconds, the rows returned and the total matched.
Also times incidents.show-style lifecycle reads and one close (a write with its note and audit
record). The target: every listing shape well under 100 ms at 10,000 incidents / 50,000 findings.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from watchstander.agent.app.incident_query import query_from_params
from watchstander.agent.app.wiring import App
from watchstander.agent.clock import system_clock
from watchstander.agent.config.load import validate_config
from watchstander.agent.models import SEVERITIES
from watchstander.agent.store.incidents import findings, incidents, search_text
from watchstander.agent.store.schema import open_store

BASE = 1_790_000_000.0
DETECTORS = {"portscan": ("T1046",), "bruteforce": ("T1110.001",), "sweep": ("T1018",), "dnstunnel": ("T1071.004",),
             "synflood": ("T1498.001",), "arpspoof": ("T1557.002",), "ids": ("T1190",), "snmp_auth": ("T1078",),
             "linkflap": (), "lateral": ("T1021.004",)}
SHAPES: dict[str, dict[str, Any]] = {
    "first page (no filter)": {},
    "status=open": {"status": "open"},
    "status=open,acknowledged min_severity=high": {"status": ["open", "acknowledged"], "min_severity": "high"},
    "severity in {critical}": {"severity": ["critical"]},
    "detector=dnstunnel": {"detector": "dnstunnel"},
    "asset substring (10.20.3.)": {"asset": "10.20.3."},
    "asset substring, no match": {"asset": "nothing-like-this"},
    "free text 'scan'": {"search": "scan"},
    "last 24 h": {"seen_after": BASE + 29 * 86400},
    "combined (open, high+, detector, text, 7 days)": {"status": "open", "min_severity": "high",
                                                        "detector": "bruteforce", "search": "ssh",
                                                        "seen_after": BASE + 23 * 86400},
    "closed false positives page 2": {"status": "closed", "limit": 50, "offset": 50},
    "deep page (offset 5000)": {"offset": 5000},
}


def build(db: Path, n_incidents: int, findings_per: int, rng: random.Random) -> App:
    """A migrated store at `db` filled with synthetic incidents and findings."""
    store = open_store(f"sqlite:///{db}")
    app = App(validate_config({"store": {"url": f"sqlite:///{db}"}}), store, system_clock)
    inc_rows: list[dict[str, Any]] = []
    find_rows: list[dict[str, Any]] = []
    names = list(DETECTORS)
    for i in range(1, n_incidents + 1):
        attacker = f"198.{rng.randrange(18, 20)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        last = BASE + rng.uniform(0, 30 * 86400)
        sev = rng.choices(SEVERITIES, weights=(10, 30, 30, 20, 10))[0]
        status = rng.choices(("open", "acknowledged", "closed"), weights=(60, 15, 25))[0]
        disposition = rng.choice(("true_positive", "benign", "false_positive")) if status == "closed" else None
        n = max(1, int(rng.gauss(findings_per, 1.5)))
        dets = rng.sample(names, k=min(len(names), rng.randrange(1, 4)))
        values = {attacker}
        victims: set[str] = set()
        for k in range(n):
            det = dets[k % len(dets)]
            victim = f"10.20.{rng.randrange(8)}.{rng.randrange(1, 255)}"
            values.add(victim)
            victims.add(victim)
            find_rows.append({
                "key": f"{i:08d}{k:04d}", "incident_id": i, "detector": det, "title": f"{det} from {attacker}",
                "severity": sev, "entities_json": json.dumps({"attacker": attacker, "victim": victim}),
                "techniques_json": json.dumps(list(DETECTORS[det])), "first_seen": last - 600,
                "last_seen": last - rng.uniform(0, 600), "count": rng.randrange(1, 500), "counts_json": "{}",
                "attributes_json": "{}", "evidence_json": "[]"})
        title = {"portscan": "Vertical port scan of", "bruteforce": "SSH password guessing against",
                 "sweep": "ICMP echo sweep from"}.get(dets[0], f"{dets[0]} activity about")
        inc_rows.append({
            "id": i, "fingerprint": f"{i:064x}", "entity": attacker, "title": f"{title} {attacker}",
            "severity": sev, "status": status, "first_seen": last - 3600, "last_seen": last,
            "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
            "assignee": rng.choice((None, None, "olga", "abe")), "disposition": disposition,
            "closed_at": "2026-01-02T00:00:00+00:00" if status == "closed" else None,
            "severity_rank": SEVERITIES.index(sev), "asset_text": "\n".join(sorted(values)).lower(), "version": 1,
            "search_text": search_text(f"{title} {attacker}", attacker),
            "summary_json": json.dumps({"detectors": sorted(dets[: n]), "findings": n,
                                        "techniques": sorted({t for d in dets[:n] for t in DETECTORS[d]}),
                                        "entities": {"attacker": [attacker], "victim": sorted(victims)}})})
    with store.begin() as conn:
        conn.execute(incidents.insert(), inc_rows)
        conn.execute(findings.insert(), find_rows)
    store.maintain()  # PRAGMA optimize: the planner's statistics, as the daemon's periodic upkeep keeps them
    return app


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], list[float], Any]:
    """Wall and CPU milliseconds of each of `runs` calls after one warm-up, and the last result.

    CPU time is this process's own: on a machine shared with other work it shows what a query
    costs on an idle core, where wall time also counts the waits for a core.
    """
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


def line(wall: list[float], cpu: list[float]) -> str:
    """Wall p50, p95, max and CPU p50, p95, in milliseconds."""
    return (f"{statistics.median(wall):8.2f} {pct(wall, 95):8.2f} {max(wall):8.2f} "
            f"{statistics.median(cpu):8.2f} {pct(cpu, 95):8.2f}")


def main(argv: list[str] | None = None) -> int:
    """Build the store, time every shape, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", type=int, default=10_000)
    ap.add_argument("--findings-per", type=int, default=5)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--keep", type=Path, help="build the store in this folder and keep it")
    args = ap.parse_args(argv)
    rng = random.Random(14409)
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "bench.db"
        db.unlink(missing_ok=True)
        t0 = time.perf_counter()
        app = build(db, args.incidents, args.findings_per, rng)
        with app.store.engine.connect() as conn:
            n_find = conn.execute(select(func.count()).select_from(findings)).scalar_one()
        print(f"store: {args.incidents:,} incidents, {n_find:,} findings, {db.stat().st_size / 1e6:.1f} MB, "
              f"built in {time.perf_counter() - t0:.1f} s; SQLite, {args.runs} runs per shape after a warm-up")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'query shape':<50} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'cpu p50':>8} {'cpu p95':>8} "
              f"{'rows':>5} {'total':>6}")
        repo = app.incident_store()
        worst = 0.0
        for name, params in SHAPES.items():
            query = query_from_params(params)
            samples, cpu, page = timed(lambda q=query: repo.search(q), args.runs)
            worst = max(worst, pct(samples, 95))
            print(f"{name:<50} {line(samples, cpu)} {len(page.rows):5d} {page.total:6d}")
        life = app.incident_lifecycle()
        samples, cpu, _ = timed(lambda: life.notes(rng.randrange(1, args.incidents + 1)), args.runs)
        print(f"{'lifecycle notes(id)':<50} {line(samples, cpu)}")
        open_ids = iter(repo.search(query_from_params({"status": "open", "limit": 1000})).rows)
        samples, cpu, _ = timed(lambda: life.close(next(open_ids).id, "uid:0:bench", "benign", "benchmark"),
                                min(args.runs, 200))
        print(f"{'lifecycle close (write + note + audit, fsync)':<50} {line(samples, cpu)}")
        print(f"worst listing p95: {worst:.2f} ms")
        app.close()
        app.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
