"""Jobs once per cluster, and sensor names on findings: on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from watchstander.agent.app.wiring import App
from watchstander.agent.clock import system_clock
from watchstander.agent.config.load import validate_config
from watchstander.agent.daemon.jobs import Jobs
from watchstander.agent.models import Finding, Incident
from watchstander.agent.store.cluster import job_leases, run_once, try_xact_lock, xact_lock
from watchstander.agent.store.incidents import IncidentQuery, IncidentStore, findings, incidents
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration


def test_each_occurrence_is_won_by_exactly_one_of_many_racing_nodes(store_url: str) -> None:
    store = open_store(store_url)
    try:
        wins: list[str] = []
        start = threading.Barrier(8)

        def node(name: str) -> None:
            start.wait(10)
            if run_once(store, "sweep", 100, name, "2026-12-01T00:00:00+00:00"):
                wins.append(name)

        threads = [threading.Thread(target=node, args=(f"n{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(wins) == 1
        assert not run_once(store, "sweep", 100, "late", "t")  # the same occurrence again
        assert not run_once(store, "sweep", 99, "lagging-clock", "t")  # an older one
        assert run_once(store, "sweep", 101, "n0", "t") and run_once(store, "other", 1, "n0", "t")
        with store.engine.connect() as conn:
            assert conn.execute(select(job_leases.c.occurrence).where(job_leases.c.name == "sweep")).scalar() == 101
    finally:
        store.close()


def _node(url: str, name: str) -> tuple[App, Jobs]:
    cfg = validate_config({"store": {"url": url}, "agent": {"name": name}, "audit": {"seal": False}})
    app = App(cfg, open_store(url, migrate=False), system_clock)

    async def flush() -> None:
        return None

    return app, Jobs(app, flush)


def test_a_cluster_job_runs_on_one_node_per_occurrence(store_url: str) -> None:
    open_store(store_url).close()
    nodes = [_node(store_url, f"node{i}") for i in range(3)]
    ran: list[str] = []
    try:
        def job_of(name: str) -> object:
            async def job() -> None:
                ran.append(name)
            return job

        async def all_nodes() -> None:
            await asyncio.gather(*(jobs.once_per_cluster("test.job", jobs.every(3600), job_of(app.config.agent.name))()
                                   for app, jobs in nodes))
            # The daemon's own sweep, as scheduled on every node: one lease, one holder.
            for _app, jobs in nodes:
                job = jobs.scheduler.get_job("suggestions.expire")
                assert job is not None
                await job.func()

        asyncio.run(all_nodes())
        assert len(ran) == 1
        with nodes[0][0].store.engine.connect() as conn:
            holders = conn.execute(select(job_leases.c.name, job_leases.c.holder)).all()
        assert sorted(h.name for h in holders) == ["suggestions.expire", "test.job"]
        assert {h.holder for h in holders} <= {"node0", "node1", "node2"}
    finally:
        for app, _jobs in nodes:
            app.close()
            app.store.close()


def test_nodes_a_few_hours_apart_agree_on_the_reminder_day(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    open_store(url).close()
    app, jobs = _node(url, "n")
    try:
        days = set()
        for hour, minute in ((7, 58), (8, 0), (8, 2), (14, 0), (19, 59)):
            at = datetime(2026, 12, 1, hour, minute, tzinfo=UTC)
            app.clock = lambda at=at: at  # type: ignore[method-assign, misc]
            days.add(jobs.reminder_day())
        assert len(days) == 1  # the reminder is at 08:00 UTC by default
        app.clock = lambda: datetime(2026, 12, 2, 8, 0, tzinfo=UTC)  # type: ignore[method-assign]
        assert jobs.reminder_day() == days.pop() + 1
    finally:
        app.close()
        app.store.close()


def test_named_locks_exclude_another_transaction_on_postgresql(store_url: str) -> None:
    store = open_store(store_url)
    try:
        with store.begin() as first:
            xact_lock(first, "incidents.correlate")
            with store.begin() as second:
                held_elsewhere = not try_xact_lock(second, "incidents.correlate")
        assert held_elsewhere == (store.engine.dialect.name == "postgresql")  # SQLite: one agent, no-op
        with store.begin() as third:
            assert try_xact_lock(third, "incidents.correlate")  # released with the first transaction
    finally:
        store.close()


def _incident(fp: str, *found: Finding) -> Incident:
    return Incident(fp, "attacker:198.51.100.7", "scan", "medium", min(f.first_seen for f in found),
                    max(f.last_seen for f in found), {f.key: f for f in found})


def test_findings_record_their_sensor_and_incidents_filter_by_it(store_url: str) -> None:
    store = open_store(store_url)
    try:
        a = Finding("portscan", "scan", "medium", {"attacker": "198.51.100.7", "victim": "10.0.0.1"}, (), 1e9, 1e9 + 5, 3)
        b = Finding("sweep", "sweep", "low", {"attacker": "198.51.100.7"}, (), 1e9 + 1, 1e9 + 9, 4)
        other = Finding("portscan", "scan", "medium", {"attacker": "198.51.100.8"}, (), 1e9, 1e9 + 5, 3)
        for sensor, inc in (("edge-1", _incident("fp1", a)), ("edge-2", _incident("fp1", a, b)),
                            ("edge-3", _incident("fp2", other))):
            repo = IncidentStore(store, system_clock, sensor=sensor)
            with store.begin() as conn:
                repo.upsert_findings(conn, repo.upsert_incident(conn, inc), inc.findings.values())
        repo = IncidentStore(store, system_clock)
        with store.begin() as conn:  # a writer that names no sensor leaves the recorded names alone
            repo.upsert_findings(conn, repo.upsert_incident(conn, _incident("fp2", other)), [other])
        one = repo.search(IncidentQuery(sensor="edge-2"))
        assert [r.entity for r in one.rows] == ["attacker:198.51.100.7"] and one.total == 1
        assert repo.search(IncidentQuery(sensor="edge-1")).total == 1  # both saw `a`: both are recorded
        assert repo.search(IncidentQuery(sensor="edge-3")).total == 1
        assert repo.search(IncidentQuery(sensor="nobody")).total == 0
        assert repo.sensors(one.rows[0].id) == ["edge-1", "edge-2"]
        assert one.rows[0].sensors == ["edge-1", "edge-2"]  # the listing reads them from the summary
        assert repo.sensors(repo.search(IncidentQuery(sensor="edge-3")).rows[0].id) == ["edge-3"]
        loaded = repo.get(one.rows[0].id)
        assert loaded is not None
        assert loaded.sensors == {a.key: ["edge-1", "edge-2"], b.key: ["edge-2"]}  # who saw what, per finding
        with store.engine.connect() as conn:  # the findings row keeps the copy with the larger count
            assert conn.execute(select(findings.c.sensor).where(findings.c.key == a.key)).scalar_one() == "edge-2"
    finally:
        store.close()


def test_a_late_smaller_copy_from_another_sensor_files_its_sensor_where_the_finding_lives(store_url: str) -> None:
    """Sensor B's older snapshot (say, from its spool) names another incident: the finding and both sensors stay put."""
    store = open_store(store_url)
    try:
        a, b = (IncidentStore(store, system_clock, sensor=name) for name in ("edge-a", "edge-b"))

        def guess(count: int) -> Finding:
            return Finding("bruteforce", "t", "high", {"attacker": "192.0.2.1"}, ("T1110",), 1000.0, 1060.0, count)
        with store.begin() as conn:
            first = a.upsert_incident(conn, _incident("fp1", guess(10)))
            a.upsert_findings(conn, first, [guess(10)])
            other = b.upsert_incident(conn, _incident("fp3", guess(3)))
            b.upsert_findings(conn, other, [guess(3)])
            b.upsert_findings(conn, other, [guess(4)])
            assert conn.execute(select(findings.c.incident_id)).scalars().all() == [first]
        assert a.sensors(first) == ["edge-a", "edge-b"] and a.sensors(other) == []
        assert [r.sensors for r in a.search(IncidentQuery(sensor="edge-b")).rows] == [["edge-a", "edge-b"]]
        with store.begin() as conn:  # a larger copy moves the finding: its sensors move with it
            b.upsert_findings(conn, other, [guess(20)])
        assert a.sensors(first) == [] and a.sensors(other) == ["edge-a", "edge-b"]
        assert [r.id for r in a.search(IncidentQuery(sensor="edge-a")).rows] == [other]
    finally:
        store.close()


def test_a_store_of_version_3_keeps_its_sensor_names_after_the_upgrade(tmp_path: Path) -> None:
    """Version 4 fills finding_sensors from the one name each finding row kept."""
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'v3.db'}"
    store = open_store(url)
    a = Finding("portscan", "scan", "medium", {"attacker": "198.51.100.7"}, (), 1e9, 1e9 + 5, 3)
    repo = IncidentStore(store, system_clock, sensor="edge-1")
    with store.begin() as conn:
        repo.upsert_findings(conn, repo.upsert_incident(conn, _incident("fp1", a)), [a])
    store.close()
    engine = create_engine(url)
    with engine.begin() as conn:  # back to version 3: no finding_sensors, the name on the finding row only
        conn.execute(text("DROP TABLE finding_sensors"))
        conn.execute(text("UPDATE schema_versions SET version = 3 WHERE component = 'core'"))
    engine.dispose()
    store = open_store(url)
    try:
        repo = IncidentStore(store, system_clock)
        (row,) = repo.search(IncidentQuery(sensor="edge-1")).rows
        assert repo.sensors(row.id) == ["edge-1"]
    finally:
        store.close()


@pytest.mark.postgres
def test_a_server_restart_under_a_sensor_loses_nothing_and_duplicates_nothing() -> None:
    from support.postgres import _as_postgres, start_server, why_unavailable

    from watchstander.agent.errors import StoreError

    if why_unavailable():
        pytest.skip(str(why_unavailable()))
    server = start_server()  # its own server: restarting the session's would disturb other tests
    try:
        url = server.url(server.create_database())
        store = open_store(url)
        repo = IncidentStore(store, system_clock, sensor="edge-1")
        found = [Finding("portscan", "scan", "medium", {"attacker": f"198.51.100.{i}"}, (), 1e9, 1e9 + 5, 3)
                 for i in range(1, 5)]

        def flush(items: list[Finding]) -> None:
            with store.begin() as conn:
                for f in items:
                    inc = _incident(f"fp{f.entities['attacker']}", f)
                    repo.upsert_findings(conn, repo.upsert_incident(conn, inc), [f])

        flush(found[:2])
        _as_postgres([str(server.bin_dir / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "fast", "-w", "stop"])
        with pytest.raises(StoreError):  # the daemon keeps these findings and retries the flush
            flush(found)
        server._start()
        flush(found)  # the retry, on a pool whose connections all died: no error, nothing twice
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(incidents)).scalar_one() == 4
            assert conn.execute(select(func.count()).select_from(findings)).scalar_one() == 4
        store.close()
    finally:
        server.stop()


def test_the_sensor_name_defaults_to_the_host_name_and_refuses_what_is_no_name() -> None:
    import socket

    from watchstander.agent.errors import ConfigError

    assert validate_config({}).agent.name.split(".")[0] == socket.gethostname().split(".")[0]
    assert validate_config({"agent": {"name": "edge-1.dmz"}}).agent.name == "edge-1.dmz"
    for bad in ("", "two words", "-dash-first", "x" * 101, "naïve"):
        with pytest.raises(ConfigError):
            validate_config({"agent": {"name": bad}})
