"""Control configuration: the Unix socket and the mapping from Unix groups to roles.

```toml
[control]
socket = "/run/watchstander/control.sock"
socket_group = "watchstander"     # group owning the socket (0660) and a directory we create (0750)
max_message = 65536               # longest request line the daemon reads, in bytes
timeout_s = 10.0                  # client: wait this long for an answer; daemon: idle connections close

[control.roles]                   # Unix groups -> roles; root is always admin
viewer = ["wsview"]
operator = ["wsoper"]
approver = ["wsappr"]
admin = ["wsadmin"]
compliance = ["wsaudit"]
```

Connecting needs write permission on the socket, so every operator must also be a member of
`socket_group`; the roles then decide what each of them may do.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from .base import Frozen

# What useradd/groupadd accept (NAME_REGEX), plus the trailing $ of machine accounts.
_GROUP = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")


def _check_groups(v: tuple[str, ...]) -> tuple[str, ...]:
    for name in v:
        if not _GROUP.fullmatch(name):
            raise ValueError(f"not a Unix group name: {name!r}")
    return v


class RolesConfig(Frozen):
    """Which Unix groups grant which role; a user in none of them is refused (root is admin)."""

    viewer: tuple[str, ...] = Field((), description="read incidents and suggestions")
    operator: tuple[str, ...] = Field((), description="edit suggestions (and view)")
    approver: tuple[str, ...] = Field((), description="approve or reject suggestions (and view)")
    admin: tuple[str, ...] = Field((), description="every role")
    compliance: tuple[str, ...] = Field((), description="audit log verification and export (and view)")

    @field_validator("viewer", "operator", "approver", "admin", "compliance")
    @classmethod
    def _groups(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_groups(v)


class ControlConfig(Frozen):
    """Where the daemon listens for local operator requests, and who may do what there."""

    socket: Path = Path("/run/watchstander/control.sock")
    socket_group: str | None = Field("watchstander", description="group owning the socket; none keeps ours")
    max_message: int = Field(64 * 1024, ge=1024, le=4 * 1024 * 1024, description="longest request line, bytes")
    timeout_s: float = Field(10.0, gt=0, le=600)
    roles: RolesConfig = RolesConfig()

    @field_validator("socket")
    @classmethod
    def _socket_path(cls, v: Path) -> Path:
        if not v.is_absolute():
            raise ValueError("the control socket path must be absolute")
        if len(str(v).encode()) > 107:  # sun_path holds 108 bytes including the terminating NUL
            raise ValueError("a Unix socket path may be at most 107 bytes long")
        return v

    @field_validator("socket_group")
    @classmethod
    def _group(cls, v: str | None) -> str | None:
        if v is not None:
            _check_groups((v,))
        return v
