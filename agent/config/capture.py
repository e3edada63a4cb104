"""[[sources.capture]]: live packet capture on an interface of the agent host."""

from __future__ import annotations

from pydantic import Field

from .base import Frozen


class CaptureSource(Frozen):
    """One interface to capture on, with an optional BPF filter."""

    interface: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9/._:-]{0,63}$")
    bpf: str = Field("", max_length=2000)
