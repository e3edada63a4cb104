"""Console configuration: the web console's listener, its TLS material, who its users are and their roles.

```toml
[console]
enabled = true
listen = "127.0.0.1:8443"                  # loopback unless you mean otherwise
cert_file = "/etc/watchstander/console/server.crt"
key_file = "/etc/watchstander/console/server.key"
client_ca = ["/etc/watchstander/console/dod-roots.pem"]   # the CA bundle(s) that issue your users' certificates
crl = "/etc/watchstander/console/dod.crl"   # optional; reloaded on SIGHUP
auth = "mtls"                               # or "proxy" (read docs/console.md first)
principal_from = ["upn", "email", "cn"]     # where a certificate's principal comes from, first match wins

[console.roles]                            # principal -> roles (the control socket's role names)
"1234567890@mil" = ["operator"]
"2345678901@mil" = ["approver"]
"jane.doe.civ@mail.mil" = ["compliance"]
```

The principal is read from the verified client certificate of the TLS connection: the UPN
(otherName 1.3.6.1.4.1.311.20.2.3, a CAC's EDIPI@mil), an e-mail SAN, or the subject CN. A
certificate whose principal is not a key of `[console.roles]` is refused (403) and audited.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Frozen, HostPort

ConsoleRole = Literal["viewer", "operator", "approver", "admin", "compliance"]
PrincipalSource = Literal["upn", "email", "cn"]

# A principal is shown on pages and written to the audit log: printable, no spaces, bounded.
_PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+\-=,]{0,199}$")
_HEADER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


def check_principal(name: str) -> str:
    """A principal name as [console.roles] accepts it; ValueError otherwise."""
    if not _PRINCIPAL.fullmatch(name):
        raise ValueError(f"not a principal name (letters, digits and . _ @ + - = , only; at most 200): {name!r}")
    return name


class ConsoleConfig(Frozen):
    """The web console: off unless enabled, TLS always, client certificates by default."""

    enabled: bool = False
    listen: HostPort = Field("127.0.0.1:8443", description="HOST:PORT the console listens on")
    cert_file: Path | None = Field(None, description="the server certificate (PEM, chain after the leaf)")
    key_file: Path | None = Field(None, description="the server certificate's private key (PEM)")
    client_ca: tuple[Path, ...] = Field((), description="CA bundle file(s) that issue the users' certificates")
    crl: Path | None = Field(None, description="a CRL file (PEM or DER) checked for the client's certificate")
    auth: Literal["mtls", "proxy"] = "mtls"
    principal_from: tuple[PrincipalSource, ...] = Field(("upn", "email", "cn"),
                                                        description="where a certificate's principal comes from")
    proxy_addresses: tuple[str, ...] = Field((), description="auth = proxy: the proxy's addresses (IPs or CIDRs)")
    proxy_header: str = Field("X-Remote-User", description="auth = proxy: the header naming the authenticated user")
    roles: dict[str, tuple[ConsoleRole, ...]] = Field(default_factory=dict,
                                                      description="principal -> roles")
    page_size: int = Field(50, ge=10, le=500, description="rows per page on list pages")
    session_ttl_s: int = Field(8 * 3600, ge=300, le=7 * 86400, description="how long a CSRF session lasts")

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: dict[str, tuple[ConsoleRole, ...]]) -> dict[str, tuple[ConsoleRole, ...]]:
        for name, roles in v.items():
            check_principal(name)
            if not roles:
                raise ValueError(f"{name}: give at least one role (remove the entry to refuse the person)")
        return v

    @field_validator("principal_from")
    @classmethod
    def _sources(cls, v: tuple[PrincipalSource, ...]) -> tuple[PrincipalSource, ...]:
        if not v or len(set(v)) != len(v):
            raise ValueError("list each of upn, email, cn at most once, and at least one of them")
        return v

    @field_validator("proxy_addresses")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"not an IP address or network: {item!r}") from exc
        return v

    @field_validator("proxy_header")
    @classmethod
    def _header(cls, v: str) -> str:
        if not _HEADER.fullmatch(v):
            raise ValueError(f"not an HTTP header name: {v!r}")
        return v

    @model_validator(mode="after")
    def _complete(self) -> ConsoleConfig:
        if not self.enabled:
            return self
        missing = [name for name in ("cert_file", "key_file") if getattr(self, name) is None]
        if self.auth == "mtls" and not self.client_ca:
            missing.append("client_ca")
        if missing:
            raise ValueError(f"an enabled console needs {', '.join(missing)} (TLS is always on)")
        if self.auth == "proxy" and not self.proxy_addresses:
            raise ValueError("auth = \"proxy\" needs proxy_addresses: the header is trusted from those only")
        if self.auth == "proxy" and self.crl is not None:
            raise ValueError("crl applies to client certificates, which auth = \"proxy\" does not read")
        return self
