"""[sources.udp], [sources.tcp], [sources.tls]: how syslog is received, and the limits that keep it safe."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from .base import Frozen, HostPort


class UdpIntake(Frozen):
    """UDP syslog: the socket's receive buffer (the kernel caps it at net.core.rmem_max)."""

    rcvbuf: int = Field(8 * 1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024,
                        description="SO_RCVBUF in bytes; raise net.core.rmem_max to match (docs)")


class TcpIntake(Frozen):
    """TCP (and TLS) syslog: connection caps and timeouts against idle and slow senders."""

    max_connections: int = Field(512, ge=1, le=65536,
                                 description="open connections overall (lowered to fit RLIMIT_NOFILE)")
    max_per_source: int = Field(32, ge=1, le=65536, description="connections per sender address")
    idle_timeout_s: float = Field(300.0, gt=0, description="a connection that sends nothing this long is closed")
    frame_timeout_s: float = Field(30.0, gt=0, description="a message (or TLS handshake) must complete within this")
    fd_reserve: int = Field(64, ge=16, le=4096,
                            description="descriptors kept free of connections (control socket, store, files)")


class TlsIntake(Frozen):
    """Syslog over TLS (RFC 5425); off unless `listen` names an address."""

    listen: tuple[HostPort, ...] = Field((), description="HOST:PORT to receive syslog over TLS on (RFC 5425: 6514)")
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = Field(None, description="when set, senders must present a certificate it signed")

    @model_validator(mode="after")
    def _has_certificate(self) -> TlsIntake:
        if self.listen and self.cert_file is None:
            raise ValueError("[sources.tls] listen needs cert_file (and key_file unless the cert file holds the key)")
        return self
