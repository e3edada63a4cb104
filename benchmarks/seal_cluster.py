"""Cost of signed checkpoints when two nodes share one store: appends, the review queue's seal check, verify.

Usage: python benchmarks/seal_cluster.py [--url URL] [--approvals N] [--filler K]

Two nodes (their own keys and checkpoint files, trusting each other) take turns appending one
approval (sealed at once) and K ordinary records. Printed: appends per second with sealing on,
the mean time of node B's `is_sealed` for each of node A's approvals (what the review queue asks
per approval before a claim, warm reader), the same from a fresh process's reader (first call reads
every row once), and one full `verify_sealed` on B. Default store: a SQLite file in a temporary
folder; pass a PostgreSQL URL to measure the shared store.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watchstander.agent.clock import system_clock
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.schema import open_store
from watchstander.agent.store.seal import (
    Sealer,
    SealPaths,
    load_or_create_signing_key,
    load_public_key,
    verify_sealed,
    write_public_key,
)


def main() -> None:
    """Run the measurement and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="store URL (default: a new SQLite file)")
    ap.add_argument("--approvals", type=int, default=500)
    ap.add_argument("--filler", type=int, default=4, help="ordinary records after each approval")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sealbench"))
    url = args.url or f"sqlite:///{root / 'store.db'}"
    paths = {}
    for name in ("a", "b"):
        (root / name).mkdir()
        paths[name] = SealPaths(root / name / "seal.key", root / name / "seal.pub", root / name / "cp.jsonl")
        write_public_key(load_or_create_signing_key(paths[name].signing_key), paths[name].public_key)
    store = open_store(url)
    logs = {n: AuditLog(store, system_clock, Sealer(paths[n], 64, system_clock,
                                                    (paths["b" if n == "a" else "a"].public_key,)))
            for n in ("a", "b")}
    by_a: list[int] = []
    start = time.perf_counter()
    for i in range(args.approvals):
        node = "a" if i % 2 == 0 else "b"
        seq = logs[node].append(f"uid:{2000 + i}:op", "suggestion.approve", f"suggestion:{i}", {"n": i}).seq
        if node == "a":
            by_a.append(seq)
        for j in range(args.filler):
            logs[node].append("watchstander:triage", "triage.verdict", f"incident:{i}", {"j": j})
    elapsed = time.perf_counter() - start
    total = args.approvals * (1 + args.filler)
    print(f"store: {url.split(':', 1)[0]}; {total} records, {args.approvals} approvals on two nodes")
    print(f"append with sealing: {total / elapsed:,.0f} records/s")
    fresh = AuditLog(store, system_clock, Sealer(paths["b"], 64, system_clock, (paths["a"].public_key,)))
    t0 = time.perf_counter()
    assert fresh.is_sealed(by_a[0])
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert all(logs["b"].is_sealed(seq) for seq in by_a)
    per = (time.perf_counter() - t0) / len(by_a)
    print(f"is_sealed on B for A's approvals: {per * 1000:.2f} ms each (warm); first call of a fresh "
          f"process {first * 1000:.1f} ms")
    t0 = time.perf_counter()
    result = verify_sealed(logs["b"], store, paths["b"].checkpoints, load_public_key(paths["b"].public_key),
                           [load_public_key(paths["a"].public_key)])
    print(f"verify_sealed on B: {time.perf_counter() - t0:.2f} s, ok={result.ok}, "
          f"signers={[(s.key, s.checkpoints) for s in result.signers]}")
    store.close()


if __name__ == "__main__":
    main()
