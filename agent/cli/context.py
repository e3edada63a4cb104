"""What every command needs, built once from the command line: config, store, clock, identity, the app."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import make_url

from ..app.wiring import App
from ..clock import Clock, system_clock
from ..config.load import load_config
from ..config.model import AgentConfig
from ..store.audit import AuditLog
from ..store.engine import Store
from ..store.schema import open_store


@dataclass
class Context:
    """Lazily loads the config and opens the store, so `--help` and `config check` stay cheap."""

    config_path: Path | None = None
    clock: Clock = system_clock
    _store: Store | None = field(default=None, init=False, repr=False)
    _reader_store: Store | None = field(default=None, init=False, repr=False)

    @cached_property
    def config(self) -> AgentConfig:
        """The validated configuration (ConfigError propagates to the CLI)."""
        return load_config(self.config_path)

    @property
    def store(self) -> Store:
        """The opened, migrated store."""
        if self._store is None:
            self._store = open_store(self.config.store.resolved_url())
        return self._store

    def use_store(self, store: Store) -> None:
        """Use `store` as the read-write store from now on (one opened differently, e.g. not yet migrated)."""
        self._store = store

    @property
    def reader_store(self) -> Store:
        """The store opened read-only, for commands that only read: never migrated, never written."""
        if self._reader_store is None:
            self._reader_store = open_store(self.config.store.resolved_url(), read_only=True)
        return self._reader_store

    @property
    def query_store(self) -> Store:
        """For commands that only read: the read-only store when one exists, else a new (empty) one.

        A fresh install then lists nothing instead of failing, and a user who may read but not
        write an existing store is served read-only.
        """
        url = make_url(self.config.store.resolved_url())
        missing = (url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
                   and not Path(str(url.database)).exists())
        return self.store if missing else self.reader_store

    @cached_property
    def app(self) -> App:
        """The agent's services over this store, built once (the composition root)."""
        return App(self.config, self.store, self.clock)

    @cached_property
    def query_app(self) -> App:
        """The agent's services over `query_store`, for commands that only read."""
        return App(self.config, self.query_store, self.clock)

    @property
    def audit(self) -> AuditLog:
        """The audit log in this store."""
        return self.app.audit

    @property
    def identity(self) -> str:
        """Who is acting: the process's real uid and its account name (no daemon in between).

        Never $LOGNAME or $USER: the caller sets those, and one uid could then approve as two people.
        """
        uid = os.getuid()
        try:
            return f"uid:{uid}:{pwd.getpwuid(uid).pw_name}"
        except KeyError:  # a uid with no account (a container's arbitrary uid)
            return f"uid:{uid}"

    def close(self) -> None:
        """Close the services and the store if they were opened."""
        for name in ("app", "query_app"):
            app = self.__dict__.pop(name, None)
            if app is not None:
                app.close()
        for store in (self._store, self._reader_store):
            if store is not None:
                store.close()
        self._store = self._reader_store = None

