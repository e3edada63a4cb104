"""[sources.flow]: how NetFlow v5/v9 and IPFIX export is received and how long templates are trusted."""

from __future__ import annotations

from pydantic import Field

from .base import Frozen


class FlowIntake(Frozen):
    """Flow export over UDP: the socket's receive buffer and the template state kept per exporter."""

    rcvbuf: int = Field(8 * 1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024,
                        description="SO_RCVBUF in bytes; raise net.core.rmem_max to match (docs/flows.md)")
    template_ttl_s: float = Field(1800.0, gt=0, le=7 * 86400,
                                  description="a template not refreshed this long is forgotten (RFC 7011: 1800 s)")
    max_domains: int = Field(4096, ge=1, le=1 << 20,
                             description="exporter domains (address + source id / observation domain) kept")
    max_templates: int = Field(1024, ge=1, le=65536, description="templates kept per domain")
    pending_sets: int = Field(256, ge=0, le=65536,
                              description="data sets held back until their template arrives (all exporters)")
