"""Workers for the sealed-cluster tests: one node per spawned process, with its own signing key and trust.

Like `pg_cluster`, this module is what spawned processes import, so it holds the workers; each
reports what it saw through a queue as plain data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from watchstander.agent.clock import system_clock
from watchstander.agent.config.policy import PolicyConfig
from watchstander.agent.policy.errors import ReviewError
from watchstander.agent.policy.guard import PolicyGuard
from watchstander.agent.policy.review import ReviewQueue
from watchstander.agent.store.approvals import ApprovalStore
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.engine import Store
from watchstander.agent.store.seal import Sealer, SealPaths
from watchstander.playbooks import load_library


def node_paths(folder: Path) -> SealPaths:
    """Where a node keeps its signing key, public key and checkpoint file."""
    return SealPaths(folder / "seal.key", folder / "seal.pub", folder / "checkpoints.jsonl")


def sealed_queue(store: Store, folder: Path, trusted: tuple[Path, ...], library: Path) -> tuple[ReviewQueue, ApprovalStore]:
    """A review queue whose audit log is sealed with the node's key in `folder`, trusting `trusted`."""
    audit = AuditLog(store, system_clock, Sealer(node_paths(folder), 64, system_clock, trusted))
    approvals = ApprovalStore(store, audit, system_clock)
    cfg = PolicyConfig()
    guard = PolicyGuard(cfg, load_library([library], include_shipped=False), approvals, (), system_clock, store=store)
    return ReviewQueue(store, audit, system_clock, cfg, guard=guard), approvals


def node_worker(url: str, folder: str, trusted: list[str], library: str, what: str, suggestion_id: int,
                actor: str, go: Any, out: Any) -> None:
    """One node in its own process: approve or claim once when told to; report (folder, outcome, detail)."""
    from watchstander.agent.store.schema import open_store

    store = open_store(url, migrate=False)
    queue, _ = sealed_queue(store, Path(folder), tuple(Path(p) for p in trusted), Path(library))
    out.put((folder, "ready", ""))
    go.wait(60)
    try:
        s = queue.approve(suggestion_id, actor, "cluster test") if what == "approve" else queue.claim(suggestion_id, actor)
        out.put((folder, "done", s.state))
    except ReviewError as exc:  # the queue's typed refusal, with its message
        out.put((folder, type(exc).__name__, str(exc)))
    except Exception as exc:  # noqa: BLE001  (anything else is a crash the test reports)
        out.put((folder, f"crash: {type(exc).__name__}", str(exc)))
    finally:
        store.close()
