"""The audit seal's keys: where they live, their ids, loading, creating and publishing them."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.engine import make_url

from ..config.audit import AuditConfig
from ..config.model import default_state_dir
from ..errors import StoreError

log = logging.getLogger(__name__)


KEY_FILE = "audit-seal.key"

PUBLIC_KEY_FILE = "audit-seal.pub"

CHECKPOINT_FILE = "audit-checkpoints.jsonl"


class SealError(StoreError):
    """A signing or verification key cannot be used (missing, unreadable, wrong mode, not Ed25519)."""


@dataclass(frozen=True)
class SealPaths:
    """Where the signing key, its public half and the checkpoint file live."""

    signing_key: Path
    public_key: Path
    checkpoints: Path


def seal_paths(config: AuditConfig, store_url: str, env: Mapping[str, str] | None = None) -> SealPaths:
    """The configured paths, defaulting to the store file's folder (or the state directory)."""
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(str(url.database)).parent
    else:
        folder = default_state_dir(env)
    return SealPaths(config.signing_key or folder / KEY_FILE, config.public_key or folder / PUBLIC_KEY_FILE,
                     config.checkpoints or folder / CHECKPOINT_FILE)


def key_id(public: Ed25519PublicKey) -> str:
    """A short fingerprint of a verification key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _publish(path: Path, data: bytes, mode: int) -> bool:
    """Write `data` at `path` unless a file is there, whole or not at all; False when one was there.

    Written beside it first and hard-linked into place: a process that starts at the same moment
    finds either no file or the complete one, never one still being written.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at `path`; created 0600 if absent; refused if group or others can read it."""
    if path.exists():
        return _load_signing_key(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        created = _publish(path, pem, 0o600)
    except OSError as exc:
        raise SealError(f"cannot create audit signing key {path}: {exc.strerror}") from exc
    if not created:  # another process made it a moment ago: use that one
        return _load_signing_key(path)
    log.info("created audit signing key %s (key id %s)", path, key_id(key.public_key()))
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at `path` (never created); refused if group or others can read it."""
    return _load_signing_key(path)


def public_pem(public: Ed25519PublicKey) -> bytes:
    """A verification key as PEM (SubjectPublicKeyInfo), as written next to the signing key."""
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        st = os.stat(path)
        if st.st_mode & 0o077:
            raise SealError(f"audit signing key {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                            "chmod 600 it")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SealError(f"cannot read audit signing key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise SealError(f"audit signing key {path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SealError(f"audit signing key {path} is not an Ed25519 key")
    return key


def write_public_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write the verification key (PEM, 0644); a file holding another key (a rotation) is replaced."""
    pem = public_pem(key.public_key())
    try:
        created = _publish(path, pem, 0o644)
    except OSError as exc:
        log.error("cannot write the audit verification key %s: %s", path, exc.strerror)
        return
    if not created:
        try:
            if path.read_bytes() == pem:
                return
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as out:
                out.write(pem)
            os.replace(tmp, path)
            log.warning("replaced %s: it did not hold the signing key's verification key (key id %s)",
                        path, key_id(key.public_key()))
        except OSError as exc:
            log.error("cannot replace the stale audit verification key %s: %s", path, exc.strerror)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The verification key at `path` (PEM SubjectPublicKeyInfo)."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise SealError(f"cannot read audit verification key {path}: {exc.strerror}") from exc
    return parse_public_key(pem, str(path))


def parse_public_key(pem: bytes, name: str = "the key given") -> Ed25519PublicKey:
    """An Ed25519 verification key from PEM bytes."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise SealError(f"audit verification key {name} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SealError(f"audit verification key {name} is not an Ed25519 key")
    return key

