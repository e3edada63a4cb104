"""SSH key material for test devices: client and host keys, known_hosts and authorized_keys files.

Keys are written in OpenSSH format with mode 0600, so both asyncssh servers and Debian's sshd
(which refuses group- or world-readable host keys) can use them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh


@dataclass(frozen=True)
class SshKeyPair:
    """One generated key: its private and public files, the public line and its SHA256 fingerprint."""

    private_path: Path
    public_path: Path
    public_line: str  # "ssh-ed25519 AAAA... comment"
    algorithm: str
    fingerprint: str  # "SHA256:..."

    def private_bytes(self) -> bytes:
        """The private key file's content (what a systemd credential would hold)."""
        return self.private_path.read_bytes()


@dataclass(frozen=True)
class SshTestKeys:
    """A client key and a host key in one directory."""

    directory: Path
    client: SshKeyPair
    host: SshKeyPair


def generate_keypair(directory: Path, name: str, algorithm: str = "ssh-ed25519") -> SshKeyPair:
    """Generate a key (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`...) as `directory/name{,.pub}`."""
    directory.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key(algorithm, comment=f"{name}@watchstander-tests")
    private_path = directory / name
    public_path = directory / f"{name}.pub"
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.export_private_key("openssh"))
    public_line = key.export_public_key("openssh").decode("ascii").strip()
    public_path.write_text(public_line + "\n", encoding="ascii")
    return SshKeyPair(private_path, public_path, public_line, key.get_algorithm(), key.get_fingerprint("sha256"))


def make_test_keys(directory: Path, *, client_algorithm: str = "ssh-ed25519",
                   host_algorithm: str = "ssh-ed25519") -> SshTestKeys:
    """A client key `client_key` and a host key `host_key` generated into `directory`."""
    return SshTestKeys(directory,
                       generate_keypair(directory, "client_key", client_algorithm),
                       generate_keypair(directory, "host_key", host_algorithm))


def known_hosts_line(host: str, port: int, key: SshKeyPair | str) -> str:
    """A known_hosts line for host:port (`[host]:port` form unless port 22), without the comment."""
    public_line = key.public_line if isinstance(key, SshKeyPair) else key
    key_type, blob = public_line.split()[:2]
    pattern = host if port == 22 else f"[{host}]:{port}"
    return f"{pattern} {key_type} {blob}"


def write_known_hosts(path: Path, lines: Sequence[str]) -> Path:
    """Write known_hosts lines to `path`; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="ascii")
    return path


def write_authorized_keys(path: Path, keys: Sequence[SshKeyPair], options: str = "") -> Path:
    """Write an authorized_keys file (mode 0600) for `keys`, each prefixed by `options` if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{options} " if options else ""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.writelines(f"{prefix}{key.public_line}\n" for key in keys)
    return path
