"""The `[audit]` section: where the audit log's signing key and signed checkpoints live."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Frozen


class AuditConfig(Frozen):
    """Signed checkpoints over the audit chain, kept outside the store (paths default next to it)."""

    seal: bool = Field(True, description="sign checkpoints over the chain head (needs the signing key)")
    signing_key: Path | None = Field(None, description="Ed25519 private key, 0600; created on first use")
    public_key: Path | None = Field(None, description="the verification key; the auditor should hold a copy")
    checkpoints: Path | None = Field(None, description="append-only JSON lines of signed checkpoints")
    seal_every: int = Field(64, ge=1, le=1_000_000, description="seal at least every N records")
    trusted_keys: tuple[Path, ...] = Field(
        (), description="other nodes' verification keys (PEM) whose checkpoints in a shared store are trusted; "
                        "keys found in the database never are")
