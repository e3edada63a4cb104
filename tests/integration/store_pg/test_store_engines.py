"""The store on SQLite and on a real PostgreSQL: the same demo gives the same incidents and a chain that verifies;
concurrent writers on PostgreSQL keep one audit chain, even when one of them is killed mid-append."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from watchstander.agent.app.replay import replay
from watchstander.agent.app.wiring import App
from watchstander.agent.clock import system_clock
from watchstander.agent.config.load import validate_config
from watchstander.agent.demo.data import write_demo_telemetry
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.incidents import IncidentStore
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration


def test_the_demo_gives_the_same_incidents_on_both_engines(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    app = App(validate_config({"store": {"url": store_url}}), store, system_clock)
    try:
        report = replay(app, write_demo_telemetry(tmp_path / "t", system_clock()), "uid:0:root")
        titles = sorted(i.title for i in IncidentStore(store, system_clock).list(limit=100))
        assert len(report.incidents) == len(titles) == 8
        assert any("port scan" in t for t in titles) and any("SYN flood" in t for t in titles)
        again = replay(app, write_demo_telemetry(tmp_path / "t2", system_clock()), "uid:0:root")
        assert len(again.incidents) == 8
        assert len(IncidentStore(store, system_clock).list(limit=100)) == 8  # same fingerprints: updated, not new
        assert app.audit.verify().ok
    finally:
        app.close()
        store.close()


def _append_forever(url: str, name: str, ready: mp.synchronize.Event) -> None:
    store = open_store(url, migrate=False)
    audit = AuditLog(store, system_clock)
    ready.set()
    n = 0
    while True:
        audit.append(f"uid:0:{name}", "test.append", f"writer:{name}", {"n": n, "pad": "x" * 200})
        n += 1


def _append_n(url: str, name: str, count: int) -> None:
    store = open_store(url, migrate=False)
    audit = AuditLog(store, system_clock)
    for n in range(count):
        audit.append(f"uid:0:{name}", "test.append", f"writer:{name}", {"n": n})
    store.close()


@pytest.mark.postgres
def test_concurrent_writers_keep_one_chain_and_a_killed_writer_breaks_nothing(postgres_url: str) -> None:
    open_store(postgres_url).close()  # migrated once, before the writers start
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    victim = ctx.Process(target=_append_forever, args=(postgres_url, "victim", ready), daemon=True)
    victim.start()
    assert ready.wait(60)
    writers = [ctx.Process(target=_append_n, args=(postgres_url, f"w{i}", 150)) for i in range(3)]
    for w in writers:
        w.start()
    time.sleep(1.0)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)  # in the middle of an append, most likely
    victim.join(10)
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    store = open_store(postgres_url, migrate=False)
    try:
        audit = AuditLog(store, system_clock)
        result = audit.verify()
        assert result.ok, result
        records = list(audit.records())
        assert [r.seq for r in records] == list(range(1, len(records) + 1))  # no gap, no fork
        by_writer = {f"w{i}": sum(1 for r in records if r.subject == f"writer:w{i}") for i in range(3)}
        assert by_writer == {"w0": 150, "w1": 150, "w2": 150}
        assert any(r.subject == "writer:victim" for r in records)
    finally:
        store.close()


def test_the_listing_indexes_exist_and_text_search_uses_trigrams_on_postgresql(store_url: str) -> None:
    from sqlalchemy import inspect as inspect_db

    from watchstander.agent.store.incidents import IncidentQuery, IncidentStore

    store = open_store(store_url)
    try:
        names = {ix["name"] for ix in inspect_db(store.engine).get_indexes("incidents")}
        assert {"ix_incidents_listing", "ix_incidents_status_listing"} <= names
        if store.engine.dialect.name == "postgresql":
            assert {"ix_incidents_search_text_trgm", "ix_incidents_asset_text_trgm"} <= names
        page = IncidentStore(store, system_clock).search(IncidentQuery(text="198.51.100.7", sensor="edge-1"))
        assert page.total == 0 and page.rows == []
    finally:
        store.close()
