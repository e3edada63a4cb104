"""Evidence references: a URL as given, or a local file identified by its SHA-256."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .errors import TrackingError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class EvidenceRef:
    """What to store for one piece of evidence before it is attached."""

    kind: str
    ref: str
    sha256: str | None = None
    size: int | None = None


def sha256_file(path: Path) -> tuple[str, int]:
    """The SHA-256 hex digest and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def resolve_evidence(spec: str, base: Path | None = None) -> EvidenceRef:
    """Turn a command-line `--evidence` value into a URL or a hashed file reference."""
    spec = spec.strip()
    if not spec:
        raise TrackingError("evidence is empty")
    parsed = urlparse(spec)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return EvidenceRef("url", spec)
    if parsed.scheme and len(parsed.scheme) > 1 and "://" in spec:
        raise TrackingError(f"evidence URL scheme {parsed.scheme!r} is not supported (use http or https)")
    path = Path(spec).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        path = path.resolve(strict=True)
        if not path.is_file():
            raise TrackingError(f"evidence {spec!r} is not a regular file")
        digest, size = sha256_file(path)
    except FileNotFoundError as exc:
        raise TrackingError(f"evidence file not found: {spec}") from exc
    except OSError as exc:
        raise TrackingError(f"cannot read evidence file {spec}: {exc.strerror}") from exc
    return EvidenceRef("file", str(path), digest, size)
