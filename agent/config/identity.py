"""[agent]: who this agent is among the sensors that share one store."""

from __future__ import annotations

import re
import socket

from pydantic import Field, field_validator

from .base import Frozen

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def host_name() -> str:
    """This host's name, cut to what a sensor name may hold (the default `[agent] name`)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:100].lstrip("._-")
    return name or "agent"


class IdentityConfig(Frozen):
    """The sensor's name, recorded on every finding it stores, so incidents show which sensors saw them."""

    name: str = Field(default_factory=host_name,
                      description="this sensor's name (letters, digits, '.', '_', '-'); default: the host name")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError(f"{v!r} is not a sensor name: 1-100 letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit")
        return v
