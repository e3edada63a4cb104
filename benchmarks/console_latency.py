"""Console response times with a full store: p50/p95 per page over HTTPS with a client certificate.

    .venv/bin/python benchmarks/console_latency.py                        # 10,000 incidents, 1,000 suggestions
    .venv/bin/python benchmarks/console_latency.py --incidents 2000 --requests 50   # quicker

It builds a SQLite store in a temporary folder through the agent's own code (IncidentStore for the
incidents and their findings, the review queue for one real suggestion whose row is then repeated
to reach the count), starts the console on 127.0.0.1 with TLS and the demo PKI
(tests/support/console_kit.py), and times each page with one keep-alive httpx client presenting
the operator's certificate. The target (issue 10): list pages under 200 ms at p95.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:  # tests/support holds the console site kit
    sys.path.insert(0, str(ROOT / "tests"))

from support.console_kit import ConsoleSite, verdict

from watchstander.agent.models import Finding, Incident, RecommendedAction
from watchstander.agent.store.incidents import IncidentStore
from watchstander.agent.store.suggestions import suggestions

DETECTORS = ("bruteforce", "portscan", "dns_tunnel", "beacon", "exfil")
SEVERITIES = ("low", "medium", "high", "critical")


def fill(site: ConsoleSite, n_incidents: int, n_suggestions: int) -> tuple[int, int]:
    """Write the incidents (each with one or two findings, every third triaged) and the suggestions."""
    store = IncidentStore(site.store, site.clock)
    now = site.clock().timestamp()
    first_id = 0
    with site.store.begin() as conn:
        for i in range(n_incidents):
            seen = now - i * 30.0
            attacker = f"203.0.{(i >> 8) & 255}.{i & 255}"
            found = {}
            for k in range(1 + i % 2):
                f = Finding(DETECTORS[(i + k) % len(DETECTORS)], f"activity {i}.{k} from {attacker}",
                            SEVERITIES[i % 4], {"attacker": attacker, "victim": f"10.20.{k}.{i % 200}"},  # type: ignore[arg-type]
                            ("T1110", "T1046")[: 1 + k], seen - 300, seen, 5 + i % 50,
                            evidence=[f"line {j} of incident {i}" for j in range(5)])
                found[f.key] = f
            inc = Incident(f"bench-{i}", attacker, f"activity from {attacker}", SEVERITIES[i % 4], seen - 300, seen,  # type: ignore[arg-type]
                           found)
            inc.id = store.upsert_incident(conn, inc)
            first_id = first_id or inc.id
            store.upsert_findings(conn, inc.id, found.values())
            if i % 3 == 0:
                inc.verdict = verdict(RecommendedAction(playbook="block-address-nftables",
                                                        parameters={"address": attacker}, justification="bench"))
                store.set_verdict(conn, inc)
    real = site.suggest(first_id)
    with site.store.begin() as conn:
        row = conn.execute(select(suggestions).where(suggestions.c.id == real.id)).one()._asdict()
        row.pop("id")
        for i in range(n_suggestions - 1):
            state = ("pending", "approved", "rejected", "expired", "succeeded")[i % 5]
            conn.execute(suggestions.insert().values(**{**row, "state": state, "incident_id": first_id + i}))
    return first_id, real.id


def serve(folder: Path) -> int:
    """Child process: serve the console over the store in `folder` until stdin closes."""
    site = ConsoleSite.create(folder)
    site.start(poll_s=1.0)
    print(f"READY {site.url}", flush=True)
    try:
        sys.stdin.read()
    finally:
        site.stop()
    return 0


def client(url: str, pki: Path) -> httpx.Client:
    """A keep-alive client presenting the operator's demo certificate."""
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(pki / "operator.crt"), str(pki / "operator.key"))
    return httpx.Client(base_url=url, verify=context, timeout=30.0)


def measure(http: httpx.Client, paths: list[str], requests: int) -> list[tuple[str, float, float, float]]:
    """(path, p50 ms, p95 ms, max ms) for each path, after two warm-up requests."""
    out = []
    for path in paths:
        for _ in range(2):
            assert http.get(path).status_code == 200, path
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            response = http.get(path)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, path
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * len(times)) - 1)]
        out.append((path, statistics.median(times), p95, times[-1]))
    return out


def main() -> int:
    """Build, serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--suggestions", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=100, help="timed requests per page")
    parser.add_argument("--serve", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="build the store in DIR and keep it; an existing one there is reused as it is")
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve)
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        folder = args.keep or Path(tmp)
        reuse = (folder / "w.db").exists()
        folder.mkdir(parents=True, exist_ok=True)
        site = ConsoleSite.create(folder)
        t0 = time.perf_counter()
        if reuse:
            first_incident, first_suggestion = 1, 1
            print(f"store: reusing {folder / 'w.db'}")
        else:
            first_incident, first_suggestion = fill(site, args.incidents, args.suggestions)
            print(f"store: {args.incidents} incidents, {args.suggestions} suggestions written in "
                  f"{time.perf_counter() - t0:.1f} s")
        site.stop()
        # The console runs in its own process, as in the daemon: the client here does not share its GIL.
        child = subprocess.Popen([sys.executable, __file__, "--serve", str(folder)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline()
        if not line.startswith("READY "):
            child.kill()
            raise SystemExit(f"the console did not start: {line!r}")
        try:
            paths = ["/incidents", "/incidents/rows", "/incidents?page=100", "/incidents?severity=high&q=203.0.1",
                     "/incidents?status=open&since=24h", "/suggestions?state=pending", "/suggestions?state=all&page=10",
                     "/runs", f"/incidents/{first_incident}", f"/suggestions/{first_suggestion}"]
            with client(line.split()[1], folder / "pki") as http:
                rows = measure(http, paths, args.requests)
        finally:
            child.stdin.close()
            child.wait(30)
    print(f"{'page':<44} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for path, p50, p95, worst in rows:
        print(f"{path:<44} {p50:8.1f} {p95:8.1f} {worst:8.1f}")
    lists = [r for r in rows if not r[0].split("?")[0].rstrip("/").split("/")[-1].isdigit()]
    worst_p95 = max(r[2] for r in lists)
    print(f"list pages: worst p95 {worst_p95:.1f} ms (target < 200 ms): {'PASS' if worst_p95 < 200 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
