"""[metrics]: the Prometheus endpoint (off by default; loopback when on)."""

from __future__ import annotations

from pydantic import Field, field_validator

from .base import Frozen


class MetricsConfig(Frozen):
    """Where Prometheus may scrape the daemon's counters."""

    enabled: bool = False
    listen: str = Field("127.0.0.1:9464", description="HOST:PORT; keep it on loopback or a management network")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host.strip("[]") or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT (or [v6]:PORT), got {v!r}")
        return v
