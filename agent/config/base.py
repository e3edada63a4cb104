"""The one base model every configuration section shares, and the value types several sections use."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def check_host_port(value: str) -> str:
    """`HOST:PORT` or `[v6]:PORT`, port 0 to 65535; ValueError otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (or [v6]:PORT), got {value!r}")
    return value


HostPort = Annotated[str, AfterValidator(check_host_port)]


class Frozen(BaseModel):
    """Base for config models: immutable, and unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")
