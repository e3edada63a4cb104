"""What every command needs, built once from the command line: config, store, clock, identity, the app."""

from __future__ import annotations

import getpass
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

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

    @cached_property
    def app(self) -> App:
        """The agent's services over this store, built once (the composition root)."""
        return App(self.config, self.store, self.clock)

    @property
    def audit(self) -> AuditLog:
        """The audit log in this store."""
        return self.app.audit

    @property
    def identity(self) -> str:
        """Who is acting: the invoking OS user (no daemon in between)."""
        try:
            return f"uid:{os.geteuid()}:{getpass.getuser()}"
        except (KeyError, OSError):
            return f"uid:{os.geteuid()}"

    def close(self) -> None:
        """Close the services and the store if they were opened."""
        app = self.__dict__.pop("app", None)
        if app is not None:
            app.close()
        if self._store is not None:
            self._store.close()
            self._store = None


def configure_logging(level: str) -> None:
    """Plain lines on stderr, which the journal records with its own timestamps."""
    logging.basicConfig(level=getattr(logging, level), format="%(levelname)s %(name)s: %(message)s")
