"""Control configuration: the Unix socket and the mapping from Unix groups to roles."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class ControlConfig(BaseModel):
    """Where the daemon listens for local operator requests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    socket: Path = Path("/run/watchstander/control.sock")
