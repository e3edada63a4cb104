"""What turns an incident into decisions: analysts, the policy guard and the review queue, built once."""

from __future__ import annotations

from dataclasses import dataclass

from watchstander.playbooks import load_library

from .assets import AssetIndex
from .audit import AuditLog
from .clock import Clock
from .config import AgentConfig
from .playbook_store import ApprovalStore
from .policy.guard import PolicyGuard
from .policy.review import ReviewQueue
from .store import Store
from .triage.service import TriageService


@dataclass
class Services:
    """The long-lived parts of triage: built at start-up (a bad config stops it), closed at shutdown."""

    assets: AssetIndex
    triage: TriageService
    review: ReviewQueue

    @classmethod
    def build(cls, config: AgentConfig, store: Store, clock: Clock) -> Services:
        """Load the playbook catalogue and wire the model, the guard and the queue to this store."""
        audit = AuditLog(store, clock)
        catalogue = load_library(config.playbooks.dirs)
        approvals = ApprovalStore(store, audit, clock)
        triage = TriageService(config.triage, clock=clock,
                               playbooks_for_model=lambda: catalogue.describe_for_model(approvals.is_approved))
        guard = PolicyGuard(config.policy, catalogue, approvals, config.assets, clock, store=store)
        review = ReviewQueue(store, audit, clock, config.policy, guard=guard)
        return cls(AssetIndex(config.assets), triage, review)

    def close(self) -> None:
        """Stop the model's worker threads."""
        self.triage.close()
