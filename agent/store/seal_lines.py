"""Signed checkpoint lines: their form, parsing (hostile input refused), digests, and the file reader."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import StoreError
from .audit import GENESIS, canonical
from .seal_keys import SealError, key_id

DOMAIN = b"watchstander-audit-checkpoint-v1\n"


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement: record `seq` of the chain had hash `head` at `time`."""

    seq: int
    head: str
    time: str
    key: str
    prev: str  # SHA-256 of the previous checkpoint line, GENESIS for the first
    unvouched: tuple[int, ...] = ()  # sealed records in range the signer did not write itself
    sig: str = ""

    def body(self) -> dict[str, Any]:
        """Every field the signature covers."""
        return {"seq": self.seq, "head": self.head, "time": self.time, "key": self.key, "prev": self.prev,
                "unvouched": list(self.unvouched)}

    def message(self) -> bytes:
        """The signed bytes: a domain tag, then the canonical body."""
        return DOMAIN + canonical(self.body()).encode("ascii")

    def line(self) -> str:
        """The JSON line stored in the checkpoint file."""
        return canonical({**self.body(), "sig": self.sig})


class BadCheckpoint(StoreError):
    """A checkpoint line or row that is not one this module wrote (the reason says what is wrong)."""

MAX_LINE = 1 << 20  # a line names at most this many characters' worth of unvouched records
MAX_UNVOUCHED = 10_000  # records one checkpoint lists as unvouched (~110 kB), well inside MAX_LINE
_FIELDS = frozenset({"seq", "head", "time", "key", "prev", "unvouched", "sig"})


def line_digest(line: str) -> str:
    """The SHA-256 a checkpoint line is chained to the next one by."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def parse_line(line: object) -> Checkpoint:
    """The checkpoint a stored line holds, exactly as signed; BadCheckpoint (saying why) for anything else."""
    if not isinstance(line, str):
        raise BadCheckpoint(f"not text but {type(line).__name__}")
    if len(line) > MAX_LINE:
        raise BadCheckpoint(f"longer than {MAX_LINE} characters")
    if not line.isascii():
        raise BadCheckpoint("not ASCII")
    try:
        d = json.loads(line)
    except (ValueError, RecursionError):
        raise BadCheckpoint("not JSON") from None
    if not isinstance(d, dict):
        raise BadCheckpoint("not a JSON object")
    if d.keys() != _FIELDS:
        raise BadCheckpoint(f"fields {sorted(d)}, expected {sorted(_FIELDS)}")
    unvouched = d["unvouched"]
    if not _positive_int(d["seq"]) or not isinstance(unvouched, list) or not all(map(_positive_int, unvouched)):
        raise BadCheckpoint("seq and unvouched must be positive integers")
    if not all(isinstance(d[k], str) for k in ("head", "time", "key", "prev", "sig")):
        raise BadCheckpoint("head, time, key, prev and sig must be strings")
    cp = Checkpoint(d["seq"], d["head"], d["time"], d["key"], d["prev"], tuple(unvouched), d["sig"])
    if cp.line() != line:
        raise BadCheckpoint("not in canonical form")
    return cp


def parse_row(key: object, seq: object, line: object) -> Checkpoint:
    """The checkpoint an `audit_checkpoints` row holds; its key and seq columns must be the signed ones."""
    cp = parse_line(line)
    if cp.key != key or cp.seq != seq:
        raise BadCheckpoint(f"the row's key and seq ({key!r}, {seq!r}) are not the line's ({cp.key}, {cp.seq})")
    return cp


@dataclass(frozen=True)
class CheckpointFile:
    """The checkpoints that verify, in order, and the first line that does not (if any)."""

    valid: tuple[Checkpoint, ...]
    bad_line: int | None = None
    reason: str | None = None
    missing: bool = False
    after: int | None = None  # the seq of the last valid checkpoint before the bad one


def read_checkpoints(path: Path, public: Ed25519PublicKey) -> CheckpointFile:
    """Read and check every line: signature by `public`, chained to the line before, seq increasing."""
    return CheckpointReader(path, public).read()


def chain_problem(public: Ed25519PublicKey, want: str, cp: Checkpoint, prev: str, last_seq: int) -> str | None:
    """Why `cp` cannot follow a checkpoint whose line digest is `prev` and which sealed `last_seq`, if it cannot."""
    if cp.key != want:
        return f"signed by key {cp.key}, not {want}"
    if not _signature_ok(public, cp):
        return "signature does not verify"
    if cp.prev != prev:
        return "not chained to the line before it (a checkpoint was removed, moved or edited)"
    if cp.seq <= last_seq:
        return f"seals record {cp.seq}, not after {last_seq}"
    return None


def _signature_ok(public: Ed25519PublicKey, cp: Checkpoint) -> bool:
    try:
        public.verify(base64.b64decode(cp.sig, validate=True), cp.message())
    except (InvalidSignature, ValueError):
        return False
    return True


class CheckpointReader:
    """Reads a checkpoint file, verifying only the complete lines appended since its last read.

    The part already verified is recognised by its SHA-256, so an edit anywhere in it makes the
    next read start over; the review queue can ask for every approval without re-checking history.
    """

    def __init__(self, path: Path, public: Ed25519PublicKey) -> None:
        self.path = path
        self.public = public
        self._want = key_id(public)
        self._reset()

    def _reset(self) -> None:
        self._done = 0  # bytes of complete, verified lines
        self._digest = hashlib.sha256(b"").hexdigest()
        self._valid: list[Checkpoint] = []
        self._prev, self._last_seq, self._lines = GENESIS, 0, 0

    def read(self) -> CheckpointFile:
        """The checkpoints that verify, and the first bad line if any."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self._reset()
            return CheckpointFile((), missing=True)
        except OSError as exc:
            raise SealError(f"cannot read audit checkpoints {self.path}: {exc.strerror}") from exc
        if len(data) < self._done or hashlib.sha256(data[:self._done]).hexdigest() != self._digest:
            self._reset()
        valid, prev, last_seq, number = list(self._valid), self._prev, self._last_seq, self._lines
        offset = self._done
        for raw in data[self._done:].splitlines(keepends=True):
            number += 1
            line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            try:
                cp = parse_line(line)
            except BadCheckpoint as exc:
                return CheckpointFile(tuple(valid), number, f"checkpoint file line {number}: not a checkpoint ({exc})")
            problem = chain_problem(self.public, self._want, cp, prev, last_seq)
            if problem is not None:
                return CheckpointFile(tuple(valid), number, f"checkpoint file line {number}: {problem}")
            valid.append(cp)
            prev, last_seq = line_digest(line), cp.seq
            offset += len(raw)
            if raw.endswith(b"\n"):  # a line still being written is checked, not remembered
                self._done, self._valid, self._prev, self._last_seq, self._lines = (
                    offset, list(valid), prev, last_seq, number)
        self._digest = hashlib.sha256(data[:self._done]).hexdigest()
        return CheckpointFile(tuple(valid))

