"""Signed checkpoints over the audit chain, kept outside the store, so a database writer cannot re-forge it.

The hash chain in `audit.py` proves only that the records agree with each other: whoever can write
the database can edit a record and re-chain everything after it. Here the service signs the chain
head with an Ed25519 key that only it can read, every `seal_every` records and at once after every
record in `SEALED_ACTIONS` (approvals, suggestion creation), and appends the signature as one JSON
line to a checkpoint file outside the database. Each line also carries the SHA-256 of the line before
it, so lines cannot be dropped or reordered either. An auditor holding the public key re-walks the
chain and checks every checkpoint against it: a rewritten, inserted or truncated record shows as the
first record no valid checkpoint vouches for. See docs/security-audit.md for what this does not cover.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.engine import make_url

from ..clock import Clock, system_clock
from ..config.audit import AuditConfig
from ..config.model import default_state_dir
from ..errors import StoreError
from .audit import GENESIS, SEALED_ACTIONS, AuditLog, AuditRecord, audit_log, canonical, record_hash
from .engine import Store

log = logging.getLogger(__name__)

KEY_FILE = "audit-seal.key"
PUBLIC_KEY_FILE = "audit-seal.pub"
CHECKPOINT_FILE = "audit-checkpoints.jsonl"
DOMAIN = b"watchstander-audit-checkpoint-v1\n"
_STAGED = "watchstander.audit.seal"


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


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at `path`; created 0600 if absent; refused if group or others can read it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        return _load_signing_key(path)
    except OSError as exc:
        raise SealError(f"cannot create audit signing key {path}: {exc.strerror}") from exc
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    log.info("created audit signing key %s (key id %s)", path, key_id(key.public_key()))
    return key


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
    """Write the verification key (PEM, 0644) unless the file already exists."""
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    except OSError as exc:
        log.error("cannot write the audit verification key %s: %s", path, exc.strerror)
        return
    with os.fdopen(fd, "wb") as out:
        out.write(pem)


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


def line_digest(line: str) -> str:
    """The SHA-256 a checkpoint line is chained to the next one by."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _parse(line: str) -> Checkpoint | None:
    try:
        d = json.loads(line)
        cp = Checkpoint(seq=d["seq"], head=d["head"], time=d["time"], key=d["key"], prev=d["prev"],
                        unvouched=tuple(d["unvouched"]), sig=d["sig"])
    except (ValueError, KeyError, TypeError):
        return None
    ints = all(isinstance(x, int) and not isinstance(x, bool) for x in (cp.seq, *cp.unvouched))
    strs = all(isinstance(x, str) for x in (cp.head, cp.time, cp.key, cp.prev, cp.sig))
    return cp if ints and strs and cp.line() == line else None


@dataclass(frozen=True)
class CheckpointFile:
    """The checkpoints that verify, in order, and the first line that does not (if any)."""

    valid: tuple[Checkpoint, ...]
    bad_line: int | None = None
    reason: str | None = None
    missing: bool = False


def read_checkpoints(path: Path, public: Ed25519PublicKey) -> CheckpointFile:
    """Read and check every line: signature by `public`, chained to the line before, seq increasing."""
    return CheckpointReader(path, public).read()


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
            problem = self._problem(_parse(line), prev, last_seq)
            if problem is not None:
                return CheckpointFile(tuple(valid), number, f"checkpoint file line {number}: {problem}")
            cp = _parse(line)
            assert cp is not None
            valid.append(cp)
            prev, last_seq = line_digest(line), cp.seq
            offset += len(raw)
            if raw.endswith(b"\n"):  # a line still being written is checked, not remembered
                self._done, self._valid, self._prev, self._last_seq, self._lines = (
                    offset, list(valid), prev, last_seq, number)
        self._digest = hashlib.sha256(data[:self._done]).hexdigest()
        return CheckpointFile(tuple(valid))

    def _problem(self, cp: Checkpoint | None, prev: str, last_seq: int) -> str | None:
        if cp is None:
            return "not a checkpoint"
        if cp.key != self._want:
            return f"signed by key {cp.key}, not {self._want}"
        if not _signature_ok(self.public, cp):
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


@dataclass
class _Staged:
    """A transaction's sealed records and the checkpoint to write when it commits."""

    txn: object
    witnessed: dict[int, str] = field(default_factory=dict)
    due: bool = False
    pending: Checkpoint | None = None
    sealer: Sealer | None = None


class Sealer:
    """Signs checkpoints over the chain as records are appended; the signing key never enters the store."""

    def __init__(self, paths: SealPaths, every: int = 64, clock: Clock = system_clock) -> None:
        self.paths = paths
        self.every = every
        self._clock = clock
        self._key: Ed25519PrivateKey | None = None
        self._engines: set[int] = set()
        self._reader: CheckpointReader | None = None

    @classmethod
    def from_config(cls, config: AuditConfig, store_url: str, clock: Clock = system_clock) -> Sealer | None:
        """The sealer the config asks for (None when sealing is off)."""
        return cls(seal_paths(config, store_url), config.seal_every, clock) if config.seal else None

    @property
    def key(self) -> Ed25519PrivateKey:
        """The signing key, loaded (or created, with its public half) on first use."""
        if self._key is None:
            self._key = load_or_create_signing_key(self.paths.signing_key)
            write_public_key(self._key, self.paths.public_key)
        return self._key

    def attach(self, engine: Engine) -> None:
        """Write staged checkpoints when a transaction on `engine` commits, drop them on rollback."""
        if id(engine) in self._engines:
            return
        if not event.contains(engine, "commit", _on_commit):
            event.listen(engine, "commit", _on_commit)
            event.listen(engine, "rollback", _on_rollback)
        self._engines.add(id(engine))

    def _last(self) -> tuple[int, str, str]:
        """(seq, head, line digest) of the last checkpoint line, or the genesis values."""
        try:
            with open(self.paths.checkpoints, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - 4096))
                lines = f.read().decode("utf-8", "surrogateescape").splitlines()
        except FileNotFoundError:
            return 0, GENESIS, GENESIS
        cp = _parse(lines[-1]) if lines else None
        if cp is None:
            return 0, GENESIS, GENESIS if not lines else line_digest(lines[-1])
        return cp.seq, cp.head, line_digest(lines[-1])

    def stage(self, conn: Connection, record: AuditRecord) -> None:
        """Prepare the checkpoint over `record`, if one is due; it is written when `conn` commits."""
        self.attach(conn.engine)
        txn = conn.get_transaction()
        staged = conn.info.get(_STAGED)
        if not isinstance(staged, _Staged) or staged.txn is not txn:
            staged = _Staged(txn, sealer=self)
            conn.info[_STAGED] = staged
        if record.action in SEALED_ACTIONS:
            staged.witnessed[record.seq] = record.hash
        last_seq, last_head, last_line = self._last()
        staged.due = staged.due or record.action in SEALED_ACTIONS or record.seq - last_seq >= self.every
        if not staged.due or record.seq <= last_seq:
            return
        rows = conn.execute(select(audit_log).where(audit_log.c.seq > last_seq, audit_log.c.seq <= record.seq)
                            .order_by(audit_log.c.seq)).all()
        prev, expected, unvouched = last_head, last_seq + 1, []
        for row in rows:
            if (row.seq != expected or row.prev_hash != prev or record_hash(
                    row.seq, row.time, row.actor, row.action, row.subject, row.data, row.prev_hash) != row.hash):
                # The chain changed since the last checkpoint: signing now would vouch for the change.
                log.error("audit chain does not continue from checkpoint %d at record %d: not sealing",
                          last_seq, expected)
                staged.pending = None
                return
            if row.action in SEALED_ACTIONS and staged.witnessed.get(row.seq) != row.hash:
                unvouched.append(row.seq)
            prev, expected = row.hash, expected + 1
        if unvouched:
            log.error("audit records %s were not sealed when written (forged, or written without the "
                      "signing key); the checkpoint at %d says so", unvouched, record.seq)
        try:
            key = self.key
        except SealError as exc:
            log.error("%s: the audit log is not being sealed", exc)
            return
        cp = Checkpoint(record.seq, record.hash, self._clock().isoformat(), key_id(key.public_key()),
                        last_line, tuple(unvouched))
        staged.pending = replace(cp, sig=base64.b64encode(key.sign(cp.message())).decode("ascii"))

    def write(self, cp: Checkpoint) -> None:
        """Append one checkpoint line (the caller holds the store's write lock, so lines stay in order)."""
        data = (cp.line() + "\n").encode("ascii")
        try:
            fd = os.open(self.paths.checkpoints, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("cannot append to audit checkpoints %s: %s", self.paths.checkpoints, exc.strerror)

    def is_sealed(self, conn: Connection, seq: int) -> bool:
        """Whether record `seq` is vouched for by this sealer's own checkpoints."""
        if self._reader is None:
            # A process that may not read the signing key can still check seals with the public half.
            public = (self.key.public_key() if self._key is not None or not self.paths.public_key.exists()
                      else load_public_key(self.paths.public_key))
            self._reader = CheckpointReader(self.paths.checkpoints, public)
        return record_is_sealed(conn, seq, self._reader)


def _on_commit(conn: Connection) -> None:
    staged = conn.info.pop(_STAGED, None)
    if (isinstance(staged, _Staged) and staged.pending is not None and staged.sealer is not None
            and staged.txn is conn.get_transaction()):
        staged.sealer.write(staged.pending)


def _on_rollback(conn: Connection) -> None:
    conn.info.pop(_STAGED, None)


def record_is_sealed(conn: Connection, seq: int, checkpoints: CheckpointReader) -> bool:
    """Whether record `seq` is covered by a valid checkpoint, matches it, and was witnessed by the signer.

    Only the stretch between the checkpoint before `seq` and the one after it is re-walked, so the
    review queue can call this for every approval it honours.
    """
    cps = checkpoints.read().valid
    before: Checkpoint | None = None
    for cp in cps:
        if seq in cp.unvouched:
            return False
        if cp.seq >= seq:
            return _stretch_matches(conn, before, cp)
        before = cp
    return False


def _stretch_matches(conn: Connection, before: Checkpoint | None, cp: Checkpoint) -> bool:
    start, prev = (before.seq, before.head) if before else (0, GENESIS)
    rows = conn.execute(select(audit_log).where(audit_log.c.seq >= max(start, 1), audit_log.c.seq <= cp.seq)
                        .order_by(audit_log.c.seq))
    expected = start + 1
    for row in rows:
        if row.seq == start:
            if row.hash != prev:
                return False
            continue
        if (row.seq != expected or row.prev_hash != prev or record_hash(
                row.seq, row.time, row.actor, row.action, row.subject, row.data, row.prev_hash) != row.hash):
            return False
        prev, expected = row.hash, expected + 1
    return expected == cp.seq + 1 and prev == cp.head


@dataclass(frozen=True)
class SealedResult:
    """The chain and its checkpoints: ok, or the first record that cannot be vouched for and why."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0
    sealed_through: int = 0
    unsealed: tuple[int, ...] = ()
    key: str | None = None


def verify_sealed(audit: AuditLog, store: Store, checkpoints: Path, public: Ed25519PublicKey) -> SealedResult:
    """Walk the chain and check it against every signed checkpoint; name the first record not vouched for."""
    chain = audit.verify()
    cpf = read_checkpoints(checkpoints, public)
    problems: list[tuple[int, str]] = []
    if not chain.ok and chain.broken_seq is not None:
        problems.append((chain.broken_seq, chain.reason or "chain broken"))
    cps = list(cpf.valid)
    last_seq, last_hash, checked = 0, GENESIS, 0
    with store.engine.connect() as conn:
        pending: Iterator[Checkpoint] = iter(cps)
        cp = next(pending, None)
        before = 0
        for row in conn.execute(select(audit_log).order_by(audit_log.c.seq)):
            if row.seq != last_seq + 1:
                break
            digest = record_hash(row.seq, row.time, row.actor, row.action, row.subject, row.data, row.prev_hash)
            if row.prev_hash != last_hash or digest != row.hash:
                break
            last_seq, last_hash, checked = row.seq, row.hash, checked + 1
            while cp is not None and cp.seq == row.seq:
                if cp.head != row.hash:
                    problems.append((before + 1, f"records {before + 1}-{cp.seq} do not match the checkpoint "
                                                 f"signed at {cp.time} for record {cp.seq} (rewritten or inserted)"))
                    cp = None
                    break
                before = cp.seq
                cp = next(pending, None)
            if cp is None and problems:
                break
    for c in cps:
        for s in c.unvouched:
            problems.append((s, f"record {s} was not sealed when written (forged, or written without the key); "
                                f"the checkpoint for record {c.seq} says so"))
    if cps and cps[-1].seq > last_seq:
        problems.append((last_seq + 1, f"the log ends at record {last_seq} but record {cps[-1].seq} was sealed "
                                       "(truncated or rewritten)"))
    if cpf.missing and last_seq:
        problems.append((1, f"no checkpoint file at {checkpoints}: no record can be vouched for"))
    elif cpf.bad_line is not None:
        after = cps[-1].seq if cps else 0
        problems.append((after + 1, cpf.reason or "bad checkpoint line"))
    sealed_through = min(cps[-1].seq, last_seq) if cps else 0
    unsealed = tuple(range(sealed_through + 1, last_seq + 1))
    if problems:
        seq, reason = min(problems)
        return SealedResult(False, min(checked, seq - 1), seq, reason, len(cps), sealed_through, unsealed,
                            key_id(public))
    return SealedResult(True, checked, None, None, len(cps), sealed_through, unsealed, key_id(public))
