"""Signed checkpoints over the audit chain, kept outside the store, so a database writer cannot re-forge it.

The hash chain in `audit.py` proves only that the records agree with each other: whoever can write
the database can edit a record and re-chain everything after it. Here the service signs the chain
head with an Ed25519 key that only it can read, every `seal_every` records and at once after every
record in `SEALED_ACTIONS` (approvals, suggestion creation), and appends the signature as one JSON
line to a checkpoint file outside the database. Each line also carries the SHA-256 of the line before
it, so lines cannot be dropped or reordered either. An auditor holding the public key re-walks the
chain and checks every checkpoint against it: a rewritten, inserted or truncated record shows as the
first record no valid checkpoint vouches for. See docs/security-audit.md for what this does not cover.

Several nodes on one store: each node signs with its own key, and writes each line also into the
store's `audit_checkpoints` table in the appending transaction, one chain per key. A node believes
checkpoints signed by its own key and by the keys its `[audit] trusted_keys` lists, never a key it
finds in the database; a record is sealed when some trusted signer's checkpoint vouches for it.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import logging
import os
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, event, func, select
from sqlalchemy.engine import make_url

from ..clock import Clock, system_clock
from ..config.audit import AuditConfig
from ..config.model import default_state_dir
from ..errors import StoreError
from .audit import (
    GENESIS,
    SEALED_ACTIONS,
    AuditLog,
    AuditRecord,
    audit_checkpoints,
    audit_log,
    canonical,
    record_hash,
)
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
    """Write the verification key (PEM, 0644) unless the file already exists."""
    pem = public_pem(key.public_key())
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


class BadCheckpoint(StoreError):
    """A checkpoint line or row that is not one this module wrote (the reason says what is wrong)."""


MAX_LINE = 1 << 20  # a line names at most this many characters' worth of unvouched records
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


def _parse(line: str) -> Checkpoint | None:
    try:
        return parse_line(line)
    except BadCheckpoint:
        return None


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


def _chain_problem(public: Ed25519PublicKey, want: str, cp: Checkpoint, prev: str, last_seq: int) -> str | None:
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
            problem = _chain_problem(self.public, self._want, cp, prev, last_seq)
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


class StoreChainReader:
    """Reads one signer's checkpoints from the store's `audit_checkpoints`, verifying only new rows.

    What was verified is kept (it is signed evidence, like a line of the file); each read first
    checks that the last verified row is still there, unchanged, and starts over if not.
    """

    def __init__(self, public: Ed25519PublicKey) -> None:
        self.public = public
        self.key = key_id(public)
        self._lock = threading.Lock()
        self._valid: list[Checkpoint] = []
        self._lines: list[str] = []

    def read(self, conn: Connection) -> CheckpointFile:
        """This signer's checkpoints that verify, in order, and the first bad row if any."""
        with self._lock:
            result = self._read(conn)
            if result is None:  # the last verified row went away or changed: read everything again
                self._valid, self._lines = [], []
                result = self._read(conn)
            assert result is not None
            return result

    def _read(self, conn: Connection) -> CheckpointFile | None:
        t = audit_checkpoints
        q = select(t.c.seq, t.c.line).where(t.c.key == self.key)
        if self._valid:
            q = q.where(t.c.seq >= self._valid[-1].seq)
        rows = iter(conn.execute(q.order_by(t.c.seq)))
        if self._valid:
            first = next(rows, None)
            if first is None or first.seq != self._valid[-1].seq or first.line != self._lines[-1]:
                return None
        valid, lines = list(self._valid), list(self._lines)
        prev = line_digest(lines[-1]) if lines else GENESIS
        for row in rows:
            try:
                cp = parse_row(self.key, row.seq, row.line)
                problem = _chain_problem(self.public, self.key, cp, prev, valid[-1].seq if valid else 0)
            except BadCheckpoint as exc:
                problem = str(exc)
            if problem is not None:
                self._valid, self._lines = valid, lines
                return CheckpointFile(tuple(valid), len(valid) + 1,
                                      f"checkpoint of key {self.key} in the store for record {row.seq}: {problem}")
            valid.append(cp)
            lines.append(row.line)
            prev = line_digest(row.line)
        self._valid, self._lines = valid, lines
        return CheckpointFile(tuple(valid))

    def still_stored(self, conn: Connection, cps: Sequence[Checkpoint]) -> bool:
        """Whether every one of `cps` is still in the store as it was read (rows deleted since: fail safe)."""
        wanted = {cp.seq: cp.line() for cp in cps}
        if not wanted:
            return True
        t = audit_checkpoints
        found = {row.seq: row.line for row in conn.execute(
            select(t.c.seq, t.c.line).where(t.c.key == self.key, t.c.seq.in_(list(wanted))))}
        return found == wanted


def _signature_ok(public: Ed25519PublicKey, cp: Checkpoint) -> bool:
    try:
        public.verify(base64.b64decode(cp.sig, validate=True), cp.message())
    except (InvalidSignature, ValueError):
        return False
    return True


def insert_checkpoint(conn: Connection, cp: Checkpoint) -> None:
    """Put `cp` into the store, replacing whatever row claims its key and seq (a signed line outranks it)."""
    t = audit_checkpoints
    conn.execute(t.delete().where(t.c.key == cp.key, t.c.seq == cp.seq))
    conn.execute(t.insert().values(key=cp.key, seq=cp.seq, head=cp.head, time=cp.time, prev=cp.prev,
                                   unvouched=json.dumps(list(cp.unvouched)), sig=cp.sig, line=cp.line()))


@dataclass
class _Staged:
    """A transaction's sealed records and the checkpoint to write to the file when it commits."""

    txn: object
    witnessed: dict[int, str] = field(default_factory=dict)
    due: bool = False
    base: tuple[int, str, str] | None = None  # the signer's last checkpoint before this transaction
    pending: Checkpoint | None = None
    sealer: Sealer | None = None


class Sealer:
    """Signs checkpoints over the chain as records are appended; the signing key never enters the store."""

    def __init__(self, paths: SealPaths, every: int = 64, clock: Clock = system_clock,
                 trusted_keys: Sequence[Path] = ()) -> None:
        self.paths = paths
        self.every = every
        self.trusted_keys = tuple(trusted_keys)
        self._clock = clock
        self._key: Ed25519PrivateKey | None = None
        self._key_failed = False
        self._engines: set[int] = set()
        self._reader: CheckpointReader | None = None
        self._chains: dict[str, StoreChainReader] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: AuditConfig, store_url: str, clock: Clock = system_clock) -> Sealer | None:
        """The sealer the config asks for (None when sealing is off)."""
        if not config.seal:
            return None
        return cls(seal_paths(config, store_url), config.seal_every, clock, config.trusted_keys)

    @property
    def key(self) -> Ed25519PrivateKey:
        """The signing key, loaded (or created, with its public half) on first use."""
        if self._key is None:
            self._key = load_or_create_signing_key(self.paths.signing_key)
            write_public_key(self._key, self.paths.public_key)
        return self._key

    def public_key(self) -> Ed25519PublicKey:
        """This node's verification key: from the signing key once loaded, else its public half on disk."""
        # A process that may not read the signing key can still check seals with the public half.
        if self._key is not None or not self.paths.public_key.exists():
            return self.key.public_key()
        return load_public_key(self.paths.public_key)

    def attach(self, engine: Engine) -> None:
        """Write staged checkpoints when a transaction on `engine` commits, drop them on rollback."""
        if id(engine) in self._engines:
            return
        if not event.contains(engine, "commit", _on_commit):
            event.listen(engine, "commit", _on_commit)
            event.listen(engine, "rollback", _on_rollback)
        self._engines.add(id(engine))

    def _file_tail(self) -> str | None:
        """The last line of this node's checkpoint file, or None without one."""
        try:
            with open(self.paths.checkpoints, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - 4096))
                lines = f.read().decode("utf-8", "surrogateescape").splitlines()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("cannot read audit checkpoints %s: %s", self.paths.checkpoints, exc.strerror)
            return None
        return lines[-1] if lines else None

    def _last(self, conn: Connection, public: Ed25519PublicKey) -> tuple[int, str, str]:
        """(seq, head, line digest) of this signer's last checkpoint in the store, or the genesis values.

        The store is the signer's memory (it is written under the chain's lock, so every process
        holding the key continues one chain); this node's file is its copy. When the store lacks
        lines the file holds (a store from before checkpoints were kept in it, or rows deleted),
        they are copied back first, so the chain goes on from where the file says it is.
        """
        reader = self._chain_for(public)
        chain = reader.read(conn)
        tail = self._file_tail()
        last = chain.valid[-1] if chain.valid else None
        differs = tail is not None and (chain.bad_line is not None or last is None or tail != last.line())
        if differs and self._restore(conn, public, {cp.seq: cp.line() for cp in chain.valid}):
            chain = reader.read(conn)
            last = chain.valid[-1] if chain.valid else None
        return (last.seq, last.head, line_digest(last.line())) if last else (0, GENESIS, GENESIS)

    def _restore(self, conn: Connection, public: Ed25519PublicKey, stored: dict[int, str]) -> bool:
        """Copy this node's valid file lines the store lacks into it; whether any were copied."""
        try:
            lines = self._file_reader(public).read().valid
        except SealError as exc:
            log.error("%s: cannot restore this node's checkpoints into the store", exc)
            return False
        missing = [cp for cp in lines if stored.get(cp.seq) != cp.line()]
        if not missing:
            return False
        heads = dict(conn.execute(select(audit_log.c.seq, audit_log.c.hash)
                                  .where(audit_log.c.seq >= missing[0].seq, audit_log.c.seq <= missing[-1].seq)).all())
        copied = 0
        for cp in missing:
            if heads.get(cp.seq) != cp.head:
                # A line whose transaction never committed (or a chain rewritten since): never copied.
                break
            insert_checkpoint(conn, cp)
            copied += 1
        if copied:
            log.warning("copied %d of this node's audit checkpoints from %s into the store (records %d-%d)",
                        copied, self.paths.checkpoints, missing[0].seq, missing[copied - 1].seq)
        return copied > 0

    def stage(self, conn: Connection, record: AuditRecord) -> None:
        """Prepare the checkpoint over `record`, if one is due: its row now, its file line when `conn` commits."""
        self.attach(conn.engine)
        txn = conn.get_transaction()
        staged = conn.info.get(_STAGED)
        if not isinstance(staged, _Staged) or staged.txn is not txn:
            staged = _Staged(txn, sealer=self)
            conn.info[_STAGED] = staged
        if record.action in SEALED_ACTIONS:
            staged.witnessed[record.seq] = record.hash
        try:
            key = self.key
        except SealError as exc:
            if not self._key_failed:  # once per process: every append would say it again
                log.error("%s: the audit log is not being sealed", exc)
                self._key_failed = True
            return
        if staged.base is None:
            staged.base = self._last(conn, key.public_key())
        last_seq, last_head, last_line = staged.base
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
                self._unstage(conn, staged)
                return
            if row.action in SEALED_ACTIONS and staged.witnessed.get(row.seq) != row.hash:
                unvouched.append(row.seq)
            prev, expected = row.hash, expected + 1
        if unvouched:
            # Another trusted node's approvals are routine in a cluster; a record no one vouches for is not.
            alone = [seq for seq in unvouched if not self._vouched_by_others(conn, seq, key_id(key.public_key()))]
            if alone:
                log.error("audit records %s were not sealed when written (forged, or written without a trusted "
                          "signing key); the checkpoint at %d says so", alone, record.seq)
        cp = Checkpoint(record.seq, record.hash, self._clock().isoformat(), key_id(key.public_key()),
                        last_line, tuple(unvouched))
        cp = replace(cp, sig=base64.b64encode(key.sign(cp.message())).decode("ascii"))
        # One checkpoint per transaction: a later append in it replaces the row staged for an earlier one.
        self._unstage(conn, staged)
        insert_checkpoint(conn, cp)
        staged.pending = cp

    def _vouched_by_others(self, conn: Connection, seq: int, own: str) -> bool:
        return any(store_record_is_sealed(conn, seq, chain) for kid, chain in self.chains().items() if kid != own)

    @staticmethod
    def _unstage(conn: Connection, staged: _Staged) -> None:
        if staged.pending is not None:
            t = audit_checkpoints
            conn.execute(t.delete().where(t.c.key == staged.pending.key, t.c.seq == staged.pending.seq))
            staged.pending = None

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

    def chains(self, own: Ed25519PublicKey | None = None) -> dict[str, StoreChainReader]:
        """A store reader for every trusted signer: this node's key and each `trusted_keys` file."""
        with self._lock:
            if self._chains is None:
                chains: dict[str, StoreChainReader] = {}
                keys: list[Ed25519PublicKey] = []
                try:
                    keys.append(own or self.public_key())
                except SealError as exc:
                    log.error("%s: this node's own checkpoints are not checked", exc)
                for path in self.trusted_keys:
                    try:
                        keys.append(load_public_key(path))
                    except SealError as exc:  # fewer trusted signers: more refusals, never fewer
                        log.error("%s: checkpoints signed by it are not trusted", exc)
                for public in keys:
                    chains.setdefault(key_id(public), StoreChainReader(public))
                self._chains = chains
            return self._chains

    def _file_reader(self, public: Ed25519PublicKey | None = None) -> CheckpointReader:
        """This node's checkpoint file, read incrementally (with `public`, or this node's key)."""
        if public is None and self._reader is not None:
            return self._reader
        public = public or self.public_key()
        if self._reader is None or key_id(self._reader.public) != key_id(public):
            self._reader = CheckpointReader(self.paths.checkpoints, public)
        return self._reader

    def _chain_for(self, public: Ed25519PublicKey) -> StoreChainReader:
        chains = self.chains(public)
        with self._lock:
            return chains.setdefault(key_id(public), StoreChainReader(public))

    def is_sealed(self, conn: Connection, seq: int) -> bool:
        """Whether record `seq` is vouched for by this node's checkpoints or a trusted signer's."""
        if record_is_sealed(conn, seq, self._file_reader()):
            return True
        return any(store_record_is_sealed(conn, seq, chain) for chain in self.chains().values())

    def why_unsealed(self, conn: Connection, seq: int) -> str:
        """Which signers cover record `seq` and why none of the trusted ones vouches for it."""
        parts: list[str] = []
        chains = self.chains()
        for kid, chain in chains.items():
            read = chain.read(conn)
            verdict = _covering(read.valid, seq)
            if verdict is None:
                last = read.valid[-1].seq if read.valid else 0
                parts.append(f"trusted key {kid} has sealed only through record {last}"
                             + (f" ({read.reason})" if read.reason else ""))
            elif verdict == "unvouched":
                parts.append(f"trusted key {kid} did not witness it")
            else:
                parts.append(f"it does not match the checkpoint of trusted key {kid} (rewritten or inserted)")
        others = _untrusted_covering(conn, seq, set(chains))
        if others:
            parts.append(f"checkpoints claiming key {', '.join(others)} cover it, but that key is not in "
                         "[audit] trusted_keys here")
        return f"record {seq}: " + ("; ".join(parts) if parts else "no trusted key to check it with")


def _untrusted_covering(conn: Connection, seq: int, trusted: set[str]) -> list[str]:
    """Keys not in `trusted` whose first stored checkpoint at or after `seq` does not list it as unvouched."""
    t = audit_checkpoints
    firsts = conn.execute(select(t.c.key, func.min(t.c.seq)).where(t.c.seq >= seq).group_by(t.c.key)).all()
    found = []
    for key, first in firsts:
        if key in trusted:
            continue
        line = conn.execute(select(t.c.line).where(t.c.key == key, t.c.seq == first)).scalar()
        try:
            cp = parse_row(key, first, line)
        except BadCheckpoint:
            continue
        if seq not in cp.unvouched:
            found.append(show_key(key))  # a made-up key is text a database writer chose
    return sorted(found)


def _on_commit(conn: Connection) -> None:
    staged = conn.info.pop(_STAGED, None)
    if (isinstance(staged, _Staged) and staged.pending is not None and staged.sealer is not None
            and staged.txn is conn.get_transaction()):
        staged.sealer.write(staged.pending)


def _on_rollback(conn: Connection) -> None:
    conn.info.pop(_STAGED, None)


def _covering(cps: Sequence[Checkpoint], seq: int) -> tuple[Checkpoint | None, Checkpoint] | str | None:
    """The checkpoints around `seq` (the one before, the one covering it); "unvouched"; or None if none covers it."""
    before: Checkpoint | None = None
    for cp in cps:
        if seq in cp.unvouched:
            return "unvouched"
        if cp.seq >= seq:
            return before, cp
        before = cp
    return None


def record_is_sealed(conn: Connection, seq: int, checkpoints: CheckpointReader) -> bool:
    """Whether record `seq` is covered by a valid checkpoint, matches it, and was witnessed by the signer.

    Only the stretch between the checkpoint before `seq` and the one after it is re-walked, so the
    review queue can call this for every approval it honours.
    """
    around = _covering(checkpoints.read().valid, seq)
    return isinstance(around, tuple) and _stretch_matches(conn, *around)


def store_record_is_sealed(conn: Connection, seq: int, chain: StoreChainReader) -> bool:
    """Like `record_is_sealed`, for one signer's checkpoints in the store; the two rows used must still be there."""
    around = _covering(chain.read(conn).valid, seq)
    if not isinstance(around, tuple):
        return False
    before, cp = around
    used = [cp] if before is None else [before, cp]
    return chain.still_stored(conn, used) and _stretch_matches(conn, before, cp)


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
class SignerReport:
    """One trusted signer's checkpoints, as `audit verify` reports them."""

    key: str
    checkpoints: int
    sealed_through: int
    own: bool = False


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
    signers: tuple[SignerReport, ...] = ()
    untrusted: tuple[tuple[str, int], ...] = ()  # (key, rows) signed by keys this node does not trust
    notes: tuple[str, ...] = ()


@dataclass
class _Source:
    """One trusted signer's checkpoints from one place (this node's file, or the store)."""

    key: str
    cps: tuple[Checkpoint, ...]
    good: list[Checkpoint] = field(default_factory=list)
    broken: bool = False


def show_key(key: object) -> str:
    """A key id as found in the store, safe to print: 16 hex digits as they are, anything else quoted and cut."""
    if isinstance(key, str) and len(key) == 16 and all(c in "0123456789abcdef" for c in key):
        return key
    return ascii(key)[:40]


def verify_sealed(audit: AuditLog, store: Store, checkpoints: Path, public: Ed25519PublicKey,
                  trusted: Sequence[Ed25519PublicKey] = ()) -> SealedResult:
    """Walk the chain and check it against every trusted signer's checkpoints; name the first record not vouched for.

    `public` is this node's key (or the auditor's copy of it): it checks the checkpoint file and this
    node's chain in the store. `trusted` are other nodes' keys, whose chains are read from the store.
    """
    chain = audit.verify()
    own = key_id(public)
    keys = {own: public}
    for extra in trusted:
        keys.setdefault(key_id(extra), extra)
    cpf = read_checkpoints(checkpoints, public)
    problems: list[tuple[int, str]] = []
    notes: list[str] = []
    if not chain.ok and chain.broken_seq is not None:
        problems.append((chain.broken_seq, chain.reason or "chain broken"))
    with store.engine.connect() as conn:
        stored = {kid: StoreChainReader(k).read(conn) for kid, k in keys.items()}
        t = audit_checkpoints
        untrusted = tuple((show_key(k), int(n)) for k, n in conn.execute(
            select(t.c.key, func.count()).group_by(t.c.key).order_by(t.c.key)) if k not in keys)
        sources = [_Source(own, cpf.valid)] + [_Source(kid, r.valid) for kid, r in stored.items()]
        last_seq, checked = _walk(conn, sources, problems, own)
        for s in sorted({u for src in sources for cp in src.good for u in cp.unvouched}):
            if any(_vouches(src.good, s) for src in sources):
                continue
            first = min((cp for src in sources for cp in src.good if s in cp.unvouched), key=lambda c: c.seq)
            others = _untrusted_covering(conn, s, set(keys))
            problems.append((s, f"record {s} was not sealed when written (forged, or written without the key); "
                                f"the checkpoint for record {first.seq} says so"
                                + (f", and no trusted key vouches for it (key {', '.join(others)} "
                                   "claims to, but is not in [audit] trusted_keys)" if others else "")))
    for src in sources:
        if not src.broken and src.cps and src.cps[-1].seq > last_seq:
            problems.append((last_seq + 1, (f"the log ends at record {last_seq} but record {src.cps[-1].seq} was "
                                           "sealed (truncated or rewritten)")))
    own_rows = stored[own].valid
    if cpf.missing:
        if last_seq and own_rows:
            problems.append((1, (f"no checkpoint file at {checkpoints}, though the store holds "
                                f"{len(own_rows)} checkpoints of this node's key (deleted or moved)")))
        elif last_seq and not any(src.cps for src in sources):
            problems.append((1, f"no checkpoint file at {checkpoints}: no record can be vouched for"))
    else:
        if cpf.bad_line is not None:
            after = cpf.valid[-1].seq if cpf.valid else 0
            problems.append((after + 1, cpf.reason or "bad checkpoint line"))
        problems.extend(_file_against_store(cpf, own_rows, notes))
    for kid, read in stored.items():
        if read.bad_line is not None:
            problems.append(((read.valid[-1].seq if read.valid else 0) + 1, read.reason or f"bad row of key {kid}"))
    signers = [SignerReport(own, max(len(cpf.valid), len(own_rows)),
                            min(max(_last_seq(cpf.valid), _last_seq(own_rows)), last_seq), True)]
    signers += [SignerReport(kid, len(read.valid), min(_last_seq(read.valid), last_seq))
                for kid, read in stored.items() if kid != own]
    sealed_through = max(s.sealed_through for s in signers)
    unsealed = tuple(range(sealed_through + 1, last_seq + 1))
    seq, reason = min(problems) if problems else (None, None)
    return SealedResult(not problems, checked if seq is None else min(checked, seq - 1), seq, reason,
                        signers[0].checkpoints, sealed_through, unsealed, own, tuple(signers), untrusted, tuple(notes))


def _last_seq(cps: Sequence[Checkpoint]) -> int:
    return cps[-1].seq if cps else 0


def _walk(conn: Connection, sources: list[_Source], problems: list[tuple[int, str]], own: str) -> tuple[int, int]:
    """Walk the chain once, matching every source's checkpoints at their seq; (last seq, records checked)."""
    merged = sorted(((cp.seq, i, cp) for i, src in enumerate(sources) for cp in src.cps), key=lambda x: x[:2])
    mismatches: list[tuple[_Source, int, Checkpoint]] = []
    pos = 0
    last_seq, last_hash, checked = 0, GENESIS, 0
    for row in conn.execute(select(audit_log).order_by(audit_log.c.seq)):
        if row.seq != last_seq + 1:
            break
        digest = record_hash(row.seq, row.time, row.actor, row.action, row.subject, row.data, row.prev_hash)
        if row.prev_hash != last_hash or digest != row.hash:
            break
        last_seq, last_hash, checked = row.seq, row.hash, checked + 1
        while pos < len(merged) and merged[pos][0] <= row.seq:
            _, i, cp = merged[pos]
            pos += 1
            src = sources[i]
            if src.broken:
                continue
            if cp.head != row.hash:
                mismatches.append((src, _last_seq(src.good), cp))
                src.broken = True
            else:
                src.good.append(cp)
    for src, before, cp in mismatches:
        # Name the first record of the stretch that no other signer's matching checkpoint vouches for.
        others = [o for o in sources if o.key != src.key]
        named = next((r for r in range(before + 1, cp.seq + 1) if not any(_vouches(o.good, r) for o in others)),
                     before + 1)
        by = "" if src.key == own else f" by key {src.key}"
        problems.append((named, (f"records {before + 1}-{cp.seq} do not match the checkpoint signed at "
                                 f"{cp.time}{by} for record {cp.seq} (rewritten or inserted)")))
    return last_seq, checked


def _vouches(good: Sequence[Checkpoint], seq: int) -> bool:
    """Whether checkpoints that all matched the chain cover `seq` without listing it as unvouched."""
    i = bisect.bisect_left([cp.seq for cp in good], seq)  # the covering one: the first at or after seq
    return i < len(good) and seq not in good[i].unvouched


def _file_against_store(cpf: CheckpointFile, rows: Sequence[Checkpoint], notes: list[str]) -> list[tuple[int, str]]:
    """This node's file and its rows in the store must hold the same lines."""
    in_file = {cp.seq: cp.line() for cp in cpf.valid}
    in_store = {cp.seq: cp.line() for cp in rows}
    differ = sorted(s for s in in_file.keys() & in_store.keys() if in_file[s] != in_store[s])
    if differ:
        return [(differ[0], (f"the store's checkpoint for record {differ[0]} differs from this node's file "
                            "(one key signed two histories)"))]
    file_last, store_last = max(in_file, default=0), max(in_store, default=0)
    if store_last > file_last and cpf.bad_line is None:
        return [(file_last + 1, (f"this node's checkpoint file ends at record {file_last} but the store holds its "
                                f"checkpoints through record {store_last} (the file was truncated or replaced, "
                                "or a line was not written)"))]
    if file_last > store_last:
        if in_store:
            return [(store_last + 1, (f"the store lacks this node's checkpoints after record {store_last} that its "
                                     f"file holds through record {file_last} (deleted from the database)"))]
        notes.append(f"the store holds none of this node's {len(in_file)} checkpoints yet: they are copied into "
                     "it at its next audited change")
    return []
