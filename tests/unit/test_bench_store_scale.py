"""benchmarks/store_scale.py stays runnable and its rows stay what the store itself would write (issue 11)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import func, select

from watchstander.agent.store.incidents import findings, incidents, refresh_summary
from watchstander.agent.store.schema import open_store

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "store_scale.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The benchmark script as a module (it puts benchmarks/ and tests/ on sys.path itself)."""
    spec = importlib.util.spec_from_file_location("store_scale", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["store_scale"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(30)
def test_tiny_run_prints_every_shape_on_sqlite(bench: ModuleType, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--engines", "sqlite", "--incidents", "200", "--findings", "2000", "--repeat", "1",
                       "--explain", "1", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in (*bench.SHAPES, "deep page, keyset (not in the app)", "detail: IncidentStore.get (10 findings)"):
        assert name in out
    all_row = next(line for line in out.splitlines() if line.startswith("all, first page (no filter)"))
    assert all_row.split()[5:7] == ["50", "200"]  # rows on the page, total
    assert "SCAN" in out or "SEARCH" in out  # a query plan was printed
    assert "what-if capped total" in out


@pytest.mark.timeout(30)
def test_filled_rows_match_what_refresh_summary_computes(bench: ModuleType, tmp_path: Path) -> None:
    """The bulk rows' folded columns equal the store's own refresh of them: a schema change shows up here."""
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        fill = bench.fill_store(store, 100, 900, lambda _m: None)
        assert fill.ten_findings_id and fill.attacker and fill.victim
        t = incidents
        with store.begin() as conn:
            assert conn.execute(select(func.count()).select_from(findings)).scalar_one() == 900
            before = {r.id: (json.loads(r.summary_json), r.asset_text)
                      for r in conn.execute(select(t.c.id, t.c.summary_json, t.c.asset_text))}
            for incident_id in before:
                refresh_summary(conn, incident_id)
            after = {r.id: (json.loads(r.summary_json), r.asset_text)
                     for r in conn.execute(select(t.c.id, t.c.summary_json, t.c.asset_text))}
            conn.rollback()
        assert after == before
    finally:
        store.close()
