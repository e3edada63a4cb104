"""Factories for policy tests: a real SQLite store, a movable clock, a copied playbook library."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.site_policy import SITE_POLICY_TOML

import watchstander.agent.store.suggestions  # noqa: F401  (registers the "review" store component)
from watchstander.agent.config.model import Asset
from watchstander.agent.config.policy import PolicyConfig
from watchstander.agent.models import Incident, Provenance, RecommendedAction, TriageVerdict
from watchstander.agent.policy.guard import PolicyGuard
from watchstander.agent.policy.review import ReviewQueue
from watchstander.agent.store.approvals import ApprovalStore
from watchstander.agent.store.audit import AuditLog
from watchstander.agent.store.engine import Store
from watchstander.agent.store.schema import open_store
from watchstander.playbooks import library_dir, load_library

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

ASSETS = (
    Asset(cidr="10.0.0.0/24", name="core-servers", criticality="critical", protected=True),
    Asset(cidr="192.168.50.10/32", name="dc1", criticality="critical", protected=True),
    Asset(cidr="2001:db8:50::/48", name="core-v6", protected=True),
    Asset(cidr="10.1.0.0/16", name="users"),
)
DEFAULTS = {
    "block-address-nftables": {"firewall": "fw1"},
    "capture-incident-traffic": {"interface": "eth1"},
    "switch-port-shutdown": {"switch": "sw1"},
    "linux-volatile-forensics": {"host": "web1"},
    "block-network-nftables": {"firewall": "fw1"},
}
# A site playbook with a cidr input (the shipped library has none).
BLOCK_NETWORK = """\
id: block-network-nftables
version: 1
title: Block an IPv4 network on a Linux firewall
description: Adds a network to the nftables set inet watchstander block_net_v4.
risk: high
timeout_s: 120
inputs:
  firewall: {type: device, role: linux-firewall, description: The firewall.}
  network: {type: cidr, family: ipv4, min_prefix_v4: 16, description: The network to block.}
steps:
  - id: add
    action: ssh.command
    args:
      target: "{{ inputs.firewall }}"
      argv: [sudo, -n, nft, add, element, inet, watchstander, block_net_v4, "{ {{ inputs.network }} }"]
"""
ALICE, BOB, CAROL = "uid:1001:alice", "uid:1002:bob", "uid:1003:carol"


class MovableClock:
    """A clock tests can move forward."""

    def __init__(self, at: datetime = NOW) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        """Move forward by a timedelta's keyword arguments."""
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> MovableClock:
    """A movable clock starting at 2026-11-27 12:00 UTC."""
    return MovableClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the SQLite store file lives."""
    return tmp_path / "w.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    """An opened, migrated SQLite store file."""
    opened = open_store(f"sqlite:///{db_path}")
    yield opened
    opened.close()


@pytest.fixture
def audit(store: Store, clock: MovableClock) -> AuditLog:
    """The audit log in that store."""
    return AuditLog(store, clock)


@pytest.fixture
def approvals(store: Store, audit: AuditLog, clock: MovableClock) -> ApprovalStore:
    """Playbook definition approvals."""
    return ApprovalStore(store, audit, clock)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A copy of the shipped library that tests may edit (loaded without the shipped folder)."""
    folder = tmp_path / "library"
    shutil.copytree(library_dir(), folder)
    (folder / "block-network-nftables.yaml").write_text(BLOCK_NETWORK, encoding="utf-8")
    return folder


@pytest.fixture
def approve_all(library: Path, approvals: ApprovalStore) -> Callable[[], None]:
    """Approve every playbook in the copied library as it is now."""

    def run() -> None:
        for playbook in load_library([library], include_shipped=False):
            approvals.approve_with(playbook, ("uid:0:root", "uid:65534:nobody"), "test setup")

    return run


@dataclass
class Policy:
    """A guard and a queue built over the same store, catalogue and config."""

    guard: PolicyGuard
    queue: ReviewQueue
    config: PolicyConfig


@pytest.fixture
def make_policy(store: Store, audit: AuditLog, approvals: ApprovalStore, clock: MovableClock,
                library: Path) -> Callable[..., Policy]:
    """Factory: a guard and queue; the catalogue is read from the copied library at each call."""

    def make(assets: Sequence[Asset] = ASSETS, **config: Any) -> Policy:
        config.setdefault("defaults", DEFAULTS)
        cfg = PolicyConfig(**config)
        catalogue = load_library([library], include_shipped=False)
        guard = PolicyGuard(cfg, catalogue, approvals, assets, clock, store=store)
        return Policy(guard, ReviewQueue(store, audit, clock, cfg, guard=guard), cfg)

    return make


@pytest.fixture
def policy(make_policy: Callable[..., Policy], approve_all: Callable[[], None]) -> Policy:
    """The default policy (autonomy `recommend`) with every library playbook approved."""
    approve_all()
    return make_policy()


def action(playbook: str, justification: str = "", **params: Any) -> RecommendedAction:
    """A recommended action."""
    return RecommendedAction(playbook=playbook, parameters=params, justification=justification)


def verdict(*actions: RecommendedAction, analyst: str = "model") -> TriageVerdict:
    """A verdict recommending `actions`, from a model (default) or the baseline."""
    return TriageVerdict(
        severity="high", confidence=0.8, disposition="likely_true_positive", summary="test", rationale="test",
        recommended_actions=tuple(actions),
        provenance=Provenance(analyst=analyst, analyst_version="test"),  # type: ignore[arg-type]
    )


def incident(incident_id: int = 1, attributes: dict[str, Any] | None = None) -> Incident:
    """An incident carrying one finding whose attributes stand in for attacker-controlled telemetry."""
    from watchstander.agent.models import Finding

    finding = Finding("bruteforce", "SSH password guessing", "high", {"attacker": "203.0.113.9"},
                      ("T1110",), 0.0, 10.0, 12, attributes=attributes or {})
    return Incident(f"fp-{incident_id}", "203.0.113.9", "guessing", "high", 0.0, 10.0,
                    {finding.key: finding}, id=incident_id)


@pytest.fixture
def mk() -> Any:
    """Builders and names shared by the policy tests: mk.action, mk.verdict, mk.incident, mk.ALICE..."""
    from types import SimpleNamespace

    return SimpleNamespace(action=action, verdict=verdict, incident=incident, ALICE=ALICE, BOB=BOB,
                           CAROL=CAROL, NOW=NOW)


@pytest.fixture
def cli_policy_toml() -> str:
    """The site the CLI tests configure: one protected network and the pinned devices."""
    return SITE_POLICY_TOML
