"""The registry and server the daemon runs: built-ins, audit.*, suggestions.*, playbooks.*, incidents.* and runs.*."""

from __future__ import annotations

from ..app.wiring import App
from .audit_methods import register_audit_methods
from .collect_methods import register_collect_methods
from .guidance_methods import register_guidance_methods
from .identity import Resolver
from .incident_methods import register_incident_methods
from .playbook_methods import register_playbook_methods
from .read_methods import register_read_methods
from .registry import MethodRegistry
from .review_methods import register_review_methods
from .server import ControlServer, register_builtin_methods


def build_registry(app: App) -> MethodRegistry:
    """Every method the daemon serves, each with its declared role."""
    registry = MethodRegistry()
    register_builtin_methods(registry, app.clock)
    register_audit_methods(registry, lambda: app.store, lambda: app.audit)
    # A queue per request, its guard on the catalogue as it is on disk now (cached while unchanged).
    register_review_methods(registry, app.review_queue)
    register_playbook_methods(registry, lambda: app.approvals, app.catalogue)
    register_read_methods(registry, lambda: app.store, app.clock)
    register_incident_methods(registry, lambda: app.incident_lifecycle())
    register_guidance_methods(registry, lambda: app)
    register_collect_methods(registry, lambda: app.store, lambda: app.audit, app.clock)
    return registry


def build_control_server(app: App, *, resolver: Resolver | None = None) -> ControlServer:
    """The daemon's control server on [control] socket, serving build_registry's methods."""
    return ControlServer(app.config.control, build_registry(app), app.clock, resolver=resolver)
