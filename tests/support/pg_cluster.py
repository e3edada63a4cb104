"""Builders for the cluster tests: one store URL, several processes, the agent's own code in each.

Worker functions live here (not in the test modules) so that spawned processes import only this
module and what it needs, and each one returns what it saw through a queue as plain data.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
from pathlib import Path
from typing import Any

from watchstander.agent.clock import system_clock
from watchstander.agent.config.policy import PolicyConfig
from watchstander.agent.models import Finding, RecommendedAction
from watchstander.agent.policy.errors import ReviewError
from watchstander.agent.policy.guard import PolicyGuard
from watchstander.agent.policy.review import ReviewQueue
from watchstander.agent.store.approvals import ApprovalStore
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.engine import Store
from watchstander.agent.store.schema import open_store
from watchstander.agent.store.seal import Sealer
from watchstander.playbooks import load_library

REQUESTER = "uid:1001:alice"


def pause_playbook(risk: str) -> str:
    """A playbook whose only step waits a second: harmless to run any number of times."""
    return f"""\
id: cluster-pause
version: 1
title: Pause (cluster test)
description: Waits one second and changes nothing.
risk: {risk}
timeout_s: 60
inputs:
  seconds:
    type: integer
    min: 1
    max: 2
    description: How long to wait.
steps:
  - id: pause
    action: wait
    args:
      seconds: "{{{{ inputs.seconds }}}}"
"""


def write_library(folder: Path, risk: str) -> Path:
    """A playbook folder holding only the pause playbook."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cluster-pause.yaml").write_text(pause_playbook(risk), encoding="utf-8")
    return folder


def build_queue(url: str, library: Path, store: Store | None = None,
                sealer: Sealer | None = None) -> tuple[ReviewQueue, ApprovalStore, AuditLog]:
    """A review queue over `store` (else the store at `url`, not migrated here) with the folder's playbooks."""
    store = store or open_store(url, migrate=False)
    audit = AuditLog(store, system_clock, sealer=sealer)
    approvals = ApprovalStore(store, audit, system_clock)
    cfg = PolicyConfig()
    catalogue = load_library([library], include_shipped=False)
    guard = PolicyGuard(cfg, catalogue, approvals, (), system_clock, store=store)
    return ReviewQueue(store, audit, system_clock, cfg, guard=guard), approvals, audit


def propose(queue: ReviewQueue, approvals: ApprovalStore, library: Path, count: int) -> list[int]:
    """Approve the pause playbook's definition and make `count` pending suggestions (one per incident)."""
    for playbook in load_library([library], include_shipped=False):
        approvals.approve_with(playbook, ("test:admin-1", "test:admin-2"), "cluster test")
    ids: list[int] = []
    for incident_id in range(1, count + 1):
        action = RecommendedAction(playbook="cluster-pause", parameters={"seconds": 1}, justification="cluster test")
        decision = queue.guard.check_action(action, "operator", rate_limit=False)
        assert decision.allowed, f"guard refused: {decision.reason} ({decision.detail})"
        (created,) = queue.submit(incident_id, [decision], actor=REQUESTER).created
        ids.append(created.id)
    return ids


def approve_worker(url: str, library: str, suggestion_id: int, approver: str, go: Any, out: Any) -> None:
    """One approver in its own process: approve once when told to; report (approver, outcome, state)."""
    store = open_store(url, migrate=False)
    queue, _approvals, _audit = build_queue(url, Path(library), store)
    out.put((approver, "ready", None))
    go.wait(60)
    try:
        s = queue.approve(suggestion_id, approver, "cluster test")
        out.put((approver, "approved", s.state))
    except ReviewError as exc:  # the queue's typed refusal: what every loser must get
        out.put((approver, type(exc).__name__, None))
    except Exception as exc:  # noqa: BLE001  (anything else is a crash the test reports)
        out.put((approver, f"crash: {type(exc).__name__}: {exc}", None))
    finally:
        store.close()


def ingest_worker(url: str, sensor: str, batches: list[list[Finding]], go: Any, out: Any) -> None:
    """One sensor in its own process: correlate, triage and store its batches, as the daemon's flush does."""
    from watchstander.agent.app.decide import decide
    from watchstander.agent.app.wiring import App
    from watchstander.agent.config.load import validate_config

    store = open_store(url, migrate=False)
    app = App(validate_config({"store": {"url": url}, "agent": {"name": sensor},
                                     "audit": {"seal": False}}), store, system_clock)
    out.put((sensor, "ready"))
    go.wait(60)
    try:
        for batch in batches:
            decide(app, batch, f"uid:0:{sensor}")
        out.put((sensor, "done"))
    except Exception as exc:  # noqa: BLE001  (a crash is reported to the test, which fails on it)
        out.put((sensor, f"crash: {type(exc).__name__}: {exc}"))
    finally:
        app.close()
        store.close()


def runner_worker(config_path: str, name: str, seconds: float, go: Any, out: Any) -> None:
    """One agent's runs dispatch in its own process, polling until nothing is approved; reports its log."""
    from watchstander.agent.app.runs import RunService
    from watchstander.agent.app.wiring import App
    from watchstander.agent.config.load import load_config

    log_path = Path(config_path).with_name(f"{name}.log")
    handler = logging.FileHandler(log_path)
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    config = load_config(config_path)
    store = open_store(config.store.resolved_url(), migrate=False)
    app = App(config, store, system_clock)
    service = RunService(app)
    out.put((name, "ready"))
    go.wait(60)

    async def loop() -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            await service.dispatch(f"uid:0:{name}")
            await asyncio.sleep(0.1)
            if not service.in_flight and not await asyncio.to_thread(service.approved_ids):
                break
        await service.drain(30)

    try:
        asyncio.run(loop())
        out.put((name, "done"))
    except Exception as exc:  # noqa: BLE001  (a crash is reported to the test, which fails on it)
        out.put((name, f"crash: {type(exc).__name__}: {exc}"))
    finally:
        app.close()
        store.close()
        handler.close()


def collect(out: Any, count: int, timeout: float = 120) -> list[Any]:
    """`count` messages from a worker queue (raises queue.Empty when the workers fall silent)."""
    return [out.get(timeout=timeout) for _ in range(count)]


def spawn() -> Any:
    """The multiprocessing context the cluster tests use: fresh interpreters, like separate hosts."""
    return mp.get_context("spawn")
