"""The one composition root: the services every entry point shares, built once from config, store and clock.

The command line, the daemon, the control socket (and the coming console) all take the playbook
catalogue, approvals, guard, review queue, triage and baseline analyst from here, so each reads
the same catalogue by the same rule and a new service is wired in one place.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from pathlib import Path

from watchstander.playbooks import Catalogue, load_library
from watchstander.playbooks.catalogue import library_dir, playbook_files

from ..assets import AssetIndex
from ..clock import Clock
from ..config.model import AgentConfig
from ..detection.detectors.registry import detector_profiles
from ..policy.guard import PolicyGuard
from ..policy.review import ReviewQueue
from ..store.approvals import ApprovalStore
from ..store.audit import AuditLog
from ..store.engine import Store
from ..store.incidents import IncidentStore
from ..store.seal import Sealer
from ..triage.baseline import BaselineAnalyst
from ..triage.service import TriageService
from .devices import DeviceDirectory
from .incident_lifecycle import IncidentLifecycle

FileStamp = tuple[str, int, int]  # path, mtime in ns, size


class PlaybookCatalogue:
    """The playbook catalogue as it is on disk now: reloaded when a file changes, cached otherwise.

    Every decision (guard, review, the model's menu) reads the catalogue through `current()`, so a
    playbook edited on disk is seen by the next decision and never bound from a stale copy, while an
    unchanged library costs a few stat calls instead of a parse.
    """

    def __init__(self, dirs: tuple[Path, ...], load: Callable[[tuple[Path, ...]], Catalogue] = load_library) -> None:
        self.dirs = dirs
        self._load = load
        self._lock = threading.Lock()
        self._stamp: tuple[FileStamp, ...] | None = None
        self._catalogue: Catalogue | None = None

    def _stamps(self) -> tuple[FileStamp, ...]:
        out: list[FileStamp] = []
        for folder in (library_dir(), *self.dirs):
            try:
                files = playbook_files(Path(folder))
            except OSError:
                out.append((str(folder), -1, -1))  # a missing folder is a problem load_library reports
                continue
            for f in files:
                try:
                    st = f.stat()
                except OSError:
                    continue
                out.append((str(f), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def current(self) -> Catalogue:
        """The catalogue matching the files on disk at this moment."""
        stamp = self._stamps()
        with self._lock:
            if self._catalogue is None or stamp != self._stamp:
                self._catalogue = self._load(self.dirs)
                self._stamp = stamp
            return self._catalogue


class App:
    """The agent's services over one store: built at start-up, shared by every entry point, closed at exit."""

    def __init__(self, config: AgentConfig, store: Store, clock: Clock) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.audit = AuditLog(store, clock, Sealer.from_config(config.audit, config.store.resolved_url(), clock))
        self.assets = AssetIndex(config.assets)
        self.approvals = ApprovalStore(store, self.audit, clock)
        self.playbooks = PlaybookCatalogue(tuple(config.playbooks.dirs))
        self.detector_profiles = detector_profiles()
        self.devices = DeviceDirectory(config)

    def catalogue(self) -> Catalogue:
        """The approved-playbook catalogue as it is on disk now."""
        return self.playbooks.current()

    def guard(self, catalogue: Catalogue | None = None) -> PolicyGuard:
        """The policy guard over the current catalogue (or the one given)."""
        return PolicyGuard(self.config.policy, catalogue or self.catalogue(), self.approvals, self.config.assets,
                           self.clock, store=self.store, inventory=self.devices)

    def review_queue(self, catalogue: Catalogue | None = None) -> ReviewQueue:
        """The review queue, its guard reading the current catalogue (or the one given)."""
        return ReviewQueue(self.store, self.audit, self.clock, self.config.policy, guard=self.guard(catalogue))

    def incident_store(self) -> IncidentStore:
        """Incidents and findings in the store, automatic lifecycle changes audited in this App's (sealed) log."""
        return IncidentStore(self.store, self.clock, self.audit, sensor=self.config.agent.name)

    def incident_lifecycle(self) -> IncidentLifecycle:
        """Acknowledge, assign, comment, close and reopen incidents, audited in this App's (sealed) log."""
        return IncidentLifecycle(self.store, self.audit, self.clock)

    @cached_property
    def triage(self) -> TriageService:
        """The model service; built on first use (a bad triage config or key raises ConfigError)."""
        return TriageService(self.config.triage, clock=self.clock,
                             playbooks_for_model=lambda: self.catalogue().describe_for_model(self.approvals.is_approved))

    def analyst(self, now: datetime | None = None) -> BaselineAnalyst:
        """The baseline analyst as of `now` (default: the clock's now), knowing every detector's profile."""
        return BaselineAnalyst(self.assets, now or self.clock(), self.detector_profiles)

    def adopt(self, fresh: App) -> None:
        """Take over the services of `fresh` (built over this store and clock from a new config), in place.

        Everything holding this App (control socket, run service, jobs) sees the new configuration
        at once; the model service this App had started is closed after the swap.
        """
        if fresh.store is not self.store:
            raise ValueError("a reload cannot change the store; [store] needs a restart")
        retired = self.__dict__.pop("triage", None)
        vars(self).update(vars(fresh))
        if retired is not None and retired is not self.__dict__.get("triage"):
            retired.close()

    def close(self) -> None:
        """Stop the model's worker threads, if the model service was started."""
        triage = self.__dict__.pop("triage", None)
        if triage is not None:
            triage.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
