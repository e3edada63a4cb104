"""The registry and server the daemon runs: built-ins, audit.*, and suggestions.*.

Import this module before the store is opened: it registers the review tables' migrations.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import review_store  # noqa: F401  (registers the suggestions tables' migrations before a store opens)
from ..audit import AuditLog
from ..clock import Clock
from ..store import Store
from .audit_methods import register_audit_methods
from .identity import Resolver
from .registry import MethodRegistry
from .review_methods import register_review_methods
from .server import ControlServer, register_builtin_methods

if TYPE_CHECKING:
    from ..config import AgentConfig
    from ..policy.review import ReviewQueue

log = logging.getLogger(__name__)


def review_queue(config: AgentConfig, store: Store, audit: AuditLog, clock: Clock) -> ReviewQueue:
    """A review queue over the store, its guard reading the playbook catalogue as it is now."""
    from watchstander.playbooks import load_library

    from ..playbook_store import ApprovalStore
    from ..policy.guard import PolicyGuard
    from ..policy.review import ReviewQueue

    # Built per request (about 50 ms): a playbook file changed on disk is seen by the next
    # decision, never bound from a stale copy.
    catalogue = load_library(config.playbooks.dirs)
    guard = PolicyGuard(config.policy, catalogue, ApprovalStore(store, audit, clock), config.assets, clock,
                        store=store)
    return ReviewQueue(store, audit, clock, config.policy, guard=guard)


def build_registry(config: AgentConfig, store: Store, clock: Clock) -> MethodRegistry:
    """Every method the daemon serves, each with its declared role."""
    registry = MethodRegistry()
    register_builtin_methods(registry, clock)
    audit = AuditLog(store, clock)
    register_audit_methods(registry, lambda: store, lambda: audit)
    register_review_methods(registry, lambda: review_queue(config, store, audit, clock))
    return registry


def build_control_server(config: AgentConfig, store: Store, clock: Clock, *,
                         resolver: Resolver | None = None) -> ControlServer:
    """The daemon's control server on [control] socket, serving build_registry's methods."""
    return ControlServer(config.control, build_registry(config, store, clock), clock, resolver=resolver)
