"""[metrics]: the Prometheus endpoint (off by default; loopback when on)."""

from __future__ import annotations

from pydantic import Field

from .base import Frozen, HostPort


class MetricsConfig(Frozen):
    """Where Prometheus may scrape the daemon's counters."""

    enabled: bool = False
    listen: HostPort = Field("127.0.0.1:9464", description="HOST:PORT; keep it on loopback or a management network")
