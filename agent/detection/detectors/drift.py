"""Configuration drift: a device's configuration differs from its last approved baseline.

SSH collection (`daemon/ssh_collect.py`) compares every configuration snapshot with the approved
baseline and, while they differ, sends one `config_drift` event per collection. This detector
turns them into one finding per device, command and baseline: a drift that persists across
collections, or changes again before anyone approves it, updates the same finding (and so the same
incident) instead of opening a new one per collection. Approving the current configuration
(`watchstander collect baseline DEVICE`) ends the drift; a later change opens a new finding.
"""

from __future__ import annotations

from watchstander.connectors.events import LOG, Event

from ...config.detectors import DriftConfig
from ...models import Finding
from .base import Detector, Emit

# The event type SSH collection marks its drift events with (kind LOG until events.py has a config kind).
DRIFT_EVENT = "config_drift"
MAX_TRACKED = 10_000


class ConfigDriftDetector(Detector):
    """One finding per (device, command, baseline) while the collected configuration differs from it."""

    id = "drift"
    kinds = (LOG,)
    techniques = ("T1562.004",)
    title = "Configuration drift from the approved baseline"
    confidence = 0.5
    playbook = None
    live_only = True

    def __init__(self, config: DriftConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.open: dict[tuple[str, str, str], Finding] = {}

    def feed(self, ev: Event) -> None:
        """Open or update the finding for one drift event."""
        attrs = ev.attrs or {}
        if attrs.get("type") != DRIFT_EVENT:
            return
        device, command, baseline = attrs.get("device"), attrs.get("command"), attrs.get("baseline_sha256")
        current, diff = attrs.get("sha256"), attrs.get("diff")
        if not all(isinstance(v, str) and v for v in (device, command, baseline, current)) or not isinstance(diff, str):
            return
        assert isinstance(device, str) and isinstance(command, str) and isinstance(baseline, str)
        assert isinstance(current, str)
        key = (device, command, baseline)
        limit = self.config.max_diff
        bounded = diff if len(diff) <= limit else diff[:limit - 1] + "…"
        f = self.open.get(key)
        if f is None:
            if len(self.open) >= MAX_TRACKED:
                self.open.pop(next(iter(self.open)))
            entities = {"victim": device, "device": device, "command": command}
            f = self.open[key] = self.new_finding(
                f"Configuration drift on {device}: {command}", self.config.severity, entities, ev,
                baseline_sha256=baseline, baseline_approved_by=attrs.get("baseline_approved_by"))
            f.counts["changed_versions"] = 0
        if f.attributes.get("sha256") != current:
            f.counts["changed_versions"] = f.counts.get("changed_versions", 0) + 1
        f.attributes.update(sha256=current, diff=bounded, diff_truncated=len(diff) > limit or
                            bool(attrs.get("diff_truncated")), lines_added=attrs.get("lines_added", 0),
                            lines_removed=attrs.get("lines_removed", 0))
        f.count += 1
        f.last_seen = ev.time
        f.add_evidence(ev.ref)
        # Any other baseline of the same device and command is history now: that drift was approved.
        for other in [k for k in self.open if k[:2] == key[:2] and k != key]:
            del self.open[other]
