"""The daemon's side of runs: dispatch picks up approved suggestions, bounded per device; jobs are scheduled."""

from __future__ import annotations

import asyncio

import pytest

from watchstander.agent.daemon.daemon import Daemon

pytestmark = pytest.mark.integration


def test_dispatch_runs_every_approved_suggestion_once_and_one_at_a_time_per_device(router_kit) -> None:  # type: ignore[no-untyped-def]
    kit, emulator = router_kit()
    ids = [kit.approved("block-address-ios-acl", {"address": f"203.0.113.{i}", "sequence": 100 + i})
           for i in range(1, 4)]
    service = kit.service()

    async def go() -> list[int]:
        started = await service.dispatch("watchstander:daemon")
        again = await service.dispatch("watchstander:daemon")  # in flight: not started twice
        assert again == []
        await asyncio.gather(*service.in_flight.values())
        await service.ssh.close()
        return started

    assert sorted(asyncio.run(go())) == sorted(ids)
    for sid in ids:
        assert kit.app.review_queue().get(sid).state == "succeeded"
    entries = emulator.acl("WATCHSTANDER-BLOCK")
    assert sum("deny ip host 203.0.113." in e for e in entries) == 3
    # max_per_device = 1: the sessions never overlapped, and one connection served them all.
    assert emulator.connections == 1


def test_daemon_schedules_the_runner_jobs(router_kit) -> None:  # type: ignore[no-untyped-def]
    kit, _ = router_kit()
    daemon = Daemon(kit.app)
    assert {"runs.dispatch", "runs.revert_due"} <= set(daemon.jobs.names())
    kit2, _ = router_kit(runner_toml="auto_run = false")
    assert "runs.dispatch" not in Daemon(kit2.app).jobs.names()
