"""Who is calling: peer credentials from the kernel, mapped to a user, their groups and their roles.

The kernel vouches for the uid (SO_PEERCRED); the account database supplies the user name and
group memberships at the time of the call, so removing someone from a group takes effect on their
next request. Roles come only from [control.roles]; root is always admin.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..config.control import RolesConfig

Role = Literal["viewer", "operator", "approver", "admin", "compliance"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "approver", "admin", "compliance")

# What each role includes. Operator and approver are kept apart on purpose: the person who edits a
# suggestion's parameters is not thereby allowed to approve it (separation of duties); someone
# who should do both is put in both groups. Only admin includes everything.
IMPLIES: dict[Role, frozenset[Role]] = {
    "viewer": frozenset({"viewer"}),
    "operator": frozenset({"operator", "viewer"}),
    "approver": frozenset({"approver", "viewer"}),
    "compliance": frozenset({"compliance", "viewer"}),
    "admin": frozenset(ROLES),
}


@dataclass(frozen=True)
class PeerCredentials:
    """What the kernel says about the process at the other end of a Unix socket."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: the uid the kernel reported, and what the account database says."""

    uid: int
    username: str | None
    groups: frozenset[str] = field(default_factory=frozenset)
    roles: frozenset[Role] = field(default_factory=frozenset)  # effective roles, implications applied
    pid: int | None = None

    @property
    def principal(self) -> str:
        """'uid:N:name' (or 'uid:N' without an account), the same form as the CLI's local identity."""
        return f"uid:{self.uid}:{self.username}" if self.username else f"uid:{self.uid}"

    def has(self, role: Role) -> bool:
        """Whether the caller holds `role` (directly or through admin and the other implications)."""
        return role in self.roles

    def as_dict(self) -> dict[str, object]:
        """Plain data for `whoami` and logs."""
        return {"uid": self.uid, "username": self.username, "principal": self.principal,
                "groups": sorted(self.groups), "roles": sorted(self.roles), "pid": self.pid}


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """SO_PEERCRED of a connected Unix socket: the peer's pid, uid and gid when it connected."""
    fmt = "3i"
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize(fmt))
    pid, uid, gid = struct.unpack(fmt, raw)
    return PeerCredentials(pid=pid, uid=uid, gid=gid)


class AccountDb(Protocol):
    """The parts of the account database role mapping needs (pwd/grp, or a fake in tests)."""

    def user(self, uid: int) -> tuple[str, int] | None:
        """(name, primary gid) of the account with this uid, or None."""

    def group_names(self, username: str, primary_gid: int) -> set[str]:
        """Names of every group the user belongs to, the primary group included."""


class SystemAccounts:
    """The real account database through pwd, grp and os.getgrouplist (NSS, so LDAP/SSSD too)."""

    def user(self, uid: int) -> tuple[str, int] | None:
        """(name, primary gid) from the passwd database."""
        try:
            pw = pwd.getpwuid(uid)
        except KeyError:
            return None
        return pw.pw_name, pw.pw_gid

    def group_names(self, username: str, primary_gid: int) -> set[str]:
        """Every group of the user, by name; gids without a name are left out."""
        try:
            gids = os.getgrouplist(username, primary_gid)
        except OSError:
            gids = [primary_gid]
        names = set()
        for gid in gids:
            try:
                names.add(grp.getgrgid(gid).gr_name)
            except KeyError:
                continue
        return names


def roles_for(groups: Iterable[str], mapping: RolesConfig, uid: int) -> frozenset[Role]:
    """Effective roles of a user in `groups` (root is admin), implications applied."""
    granted: set[Role] = {"admin"} if uid == 0 else set()
    member = set(groups)
    for role in ROLES:
        if member & set(getattr(mapping, role)):
            granted.add(role)
    return frozenset().union(*(IMPLIES[r] for r in granted)) if granted else frozenset()


Resolver = Callable[[PeerCredentials], Identity]


def make_resolver(mapping: RolesConfig, accounts: AccountDb | None = None) -> Resolver:
    """A resolver from peer credentials to an Identity, using `accounts` (default: the system's)."""
    db: AccountDb = accounts if accounts is not None else SystemAccounts()

    def resolve(cred: PeerCredentials) -> Identity:
        # The passwd primary gid, not the peer's current gid: a process that switched its gid with
        # newgrp and a group password must not gain that group's role.
        account = db.user(cred.uid)
        if account is None:
            return Identity(uid=cred.uid, username=None, roles=roles_for((), mapping, cred.uid), pid=cred.pid)
        name, primary = account
        groups = frozenset(db.group_names(name, primary))
        return Identity(uid=cred.uid, username=name, groups=groups,
                        roles=roles_for(groups, mapping, cred.uid), pid=cred.pid)

    return resolve
