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

This module signs (`Sealer`); `seal_keys` holds the keys, `seal_lines` the checkpoint lines and the
file reader, `seal_store` the readers of the store's rows, `seal_verify` `audit verify`. The public
names of all four are importable from here.
"""

from __future__ import annotations

import base64
import bisect
import fcntl
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, event, select

from ..clock import Clock, system_clock
from ..config.audit import AuditConfig
from .audit import GENESIS, SEALED_ACTIONS, AuditRecord, audit_checkpoints, audit_log, record_hash
from .engine import AFTER_COMMIT
from .seal_keys import (
    CHECKPOINT_FILE,
    KEY_FILE,
    PUBLIC_KEY_FILE,
    SealError,
    SealPaths,
    key_id,
    load_or_create_signing_key,
    load_public_key,
    load_signing_key,
    parse_public_key,
    public_pem,
    seal_paths,
    write_public_key,
)
from .seal_lines import (
    MAX_LINE,
    MAX_UNVOUCHED,
    BadCheckpoint,
    Checkpoint,
    CheckpointFile,
    CheckpointReader,
    line_digest,
    parse_line,
    parse_row,
    read_checkpoints,
)
from .seal_store import (
    StoreChainReader,
    covering,
    insert_checkpoint,
    record_is_sealed,
    show_key,
    store_record_is_sealed,
    stretch_matches,
    untrusted_covering,
)
from .seal_verify import SealedResult, SignerReport, verify_sealed

__all__ = ["CHECKPOINT_FILE", "KEY_FILE", "MAX_LINE", "MAX_UNVOUCHED", "PUBLIC_KEY_FILE", "BadCheckpoint", "Checkpoint",
           "CheckpointFile", "CheckpointReader", "SealError", "SealPaths", "SealedResult", "Sealer", "SignerReport",
           "StoreChainReader", "insert_checkpoint", "key_id", "line_digest", "load_or_create_signing_key",
           "load_public_key", "load_signing_key", "parse_line", "parse_public_key", "parse_row", "public_pem",
           "read_checkpoints", "record_is_sealed", "seal_paths", "show_key", "store_record_is_sealed",
           "verify_sealed", "write_public_key"]

log = logging.getLogger(__name__)

_STAGED = "watchstander.audit.seal"


@dataclass
class _Staged:
    """A transaction's sealed records and the checkpoint to write to the file when it commits."""

    txn: object
    witnessed: dict[int, str] = field(default_factory=dict)
    due: bool = False
    base: tuple[int, str, str] | None = None  # the signer's last checkpoint before this transaction
    pending: list[Checkpoint] = field(default_factory=list)
    sealer: Sealer | None = None
    hooked: bool = False

    def written(self) -> None:
        """Run by Store.begin() once the transaction committed: append its lines to the node's file."""
        if self.sealer is not None:
            for cp in self.pending:
                self.sealer.write(cp)


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
        self._file_lock = threading.Lock()
        self._appender: CheckpointReader | None = None

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
        """This node's verification key: from the signing key when readable, else its public half on disk."""
        if self._key is not None or not self.paths.public_key.exists():
            return self.key.public_key()
        if self.paths.signing_key.exists():
            try:  # the .pub may be stale (a rotated key); loading the key replaces it
                return self.key.public_key()
            except SealError:
                pass  # a process that may not read the signing key still checks seals with the public half
        return load_public_key(self.paths.public_key)

    def attach(self, engine: Engine) -> None:
        """Forget staged checkpoints when a transaction on `engine` ends (their lines are written after commit)."""
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
        they are copied back first, so the chain goes on from where the file says it is; when the
        file lacks lines the store holds (an append that failed, a crash after the commit), they
        are appended to it.
        """
        reader = self._chain_for(public)
        chain = reader.read(conn)
        tail = self._file_tail()
        last = chain.valid[-1] if chain.valid else None
        differs = tail is not None and (chain.bad_line is not None or last is None or tail != last.line())
        if differs and self._restore(conn, public, {cp.seq: cp.line() for cp in chain.valid}):
            chain = reader.read(conn)
            last = chain.valid[-1] if chain.valid else None
        if last is not None and tail != last.line():
            self._append_lines(list(chain.valid))
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
        """Prepare the checkpoint over `record`, if one is due: its row now, its file line once `conn` commits."""
        self.attach(conn.engine)
        txn = conn.get_transaction()
        staged = conn.info.get(_STAGED)
        if not isinstance(staged, _Staged) or staged.txn is not txn:
            staged = _Staged(txn, sealer=self)
            conn.info[_STAGED] = staged
        if record.action in SEALED_ACTIONS:
            staged.witnessed[record.seq] = record.hash
        if staged.base is None and self._key is None and not self.paths.signing_key.exists():
            # No key yet, so no checkpoint of ours anywhere: the key is made when the first one is due,
            # not by any append (an `audit verify` would then expect checkpoints that were never due).
            staged.base = (0, GENESIS, GENESIS)
        if staged.base is not None:
            last_seq = staged.base[0]
            if not (staged.due or record.action in SEALED_ACTIONS or record.seq - last_seq >= self.every):
                return
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
        cps = self._sign_stretch(conn, staged, key, last_seq, last_head, last_line, record)
        # One set of checkpoints per transaction: a later append in it replaces what an earlier one staged.
        self._unstage(conn, staged)
        if cps is None:
            return
        for cp in cps:
            insert_checkpoint(conn, cp)
        staged.pending = cps
        after = conn.info.get(AFTER_COMMIT)
        if isinstance(after, list) and not staged.hooked:
            after.append(staged.written)
            staged.hooked = True

    def _sign_stretch(self, conn: Connection, staged: _Staged, key: Ed25519PrivateKey, last_seq: int,
                      last_head: str, last_line: str, record: AuditRecord) -> list[Checkpoint] | None:
        """Signed checkpoints over records after `last_seq` through `record`, or None if the chain changed.

        The rows are streamed, and a stretch that would list more than MAX_UNVOUCHED records (a node
        that has not sealed while other nodes sealed a great many) is split into several checkpoints.
        """
        own = key_id(key.public_key())
        rows = conn.execute(select(audit_log).where(audit_log.c.seq > last_seq, audit_log.c.seq <= record.seq)
                            .order_by(audit_log.c.seq).execution_options(yield_per=2000))
        prev, expected, unvouched, all_unvouched = last_head, last_seq + 1, [], []
        cps: list[Checkpoint] = []
        for row in rows:
            if (row.seq != expected or row.prev_hash != prev or record_hash(
                    row.seq, row.time, row.actor, row.action, row.subject, row.data, row.prev_hash) != row.hash):
                rows.close()
                # The chain changed since the last checkpoint: signing now would vouch for the change.
                log.error("audit chain does not continue from checkpoint %d at record %d: not sealing",
                          last_seq, expected)
                return None
            if row.action in SEALED_ACTIONS and staged.witnessed.get(row.seq) != row.hash:
                unvouched.append(row.seq)
            prev, expected = row.hash, expected + 1
            if len(unvouched) >= MAX_UNVOUCHED and row.seq < record.seq:
                cps.append(self._sign(key, row.seq, row.hash, last_line, unvouched))
                last_line = line_digest(cps[-1].line())
                all_unvouched += unvouched
                unvouched = []
        if expected != record.seq + 1:
            log.error("audit chain does not continue from checkpoint %d at record %d: not sealing", last_seq, expected)
            return None
        all_unvouched += unvouched
        cps.append(self._sign(key, record.seq, record.hash, last_line, unvouched))
        if all_unvouched:
            # Another trusted node's approvals are routine in a cluster; a record no one vouches for is not.
            alone = self._unvouched_by_others(conn, all_unvouched, own)
            if alone:
                log.error("audit records %s were not sealed when written (forged, or written without a trusted "
                          "signing key); the checkpoint at %d says so", _some(alone), record.seq)
        return cps

    def _sign(self, key: Ed25519PrivateKey, seq: int, head: str, prev: str, unvouched: Sequence[int]) -> Checkpoint:
        cp = Checkpoint(seq, head, self._clock().isoformat(), key_id(key.public_key()), prev, tuple(unvouched))
        return replace(cp, sig=base64.b64encode(key.sign(cp.message())).decode("ascii"))

    def _unvouched_by_others(self, conn: Connection, seqs: Sequence[int], own: str) -> list[int]:
        """The records of `seqs` no other trusted signer vouches for (each signer's stretch walked once)."""
        left = list(seqs)
        for kid, chain in self.chains().items():
            if kid == own or not left:
                continue
            valid = chain.read(conn).valid
            ends = [cp.seq for cp in valid]
            verdicts: dict[int, bool] = {}
            still = []
            for seq in left:
                i = bisect.bisect_left(ends, seq)
                if i == len(valid) or seq in valid[i].unvouched:
                    still.append(seq)
                    continue
                if i not in verdicts:
                    before = valid[i - 1] if i else None
                    used = [valid[i]] if before is None else [before, valid[i]]
                    verdicts[i] = chain.still_stored(conn, used) and stretch_matches(conn, before, valid[i])
                if not verdicts[i]:
                    still.append(seq)
            left = still
        return left

    @staticmethod
    def _unstage(conn: Connection, staged: _Staged) -> None:
        t = audit_checkpoints
        for cp in staged.pending:
            conn.execute(t.delete().where(t.c.key == cp.key, t.c.seq == cp.seq))
        staged.pending = []

    def write(self, cp: Checkpoint) -> None:
        """Append one committed checkpoint line to this node's file (once; only after the line it chains to)."""
        self._append_lines([cp])

    def _append_lines(self, cps: Sequence[Checkpoint]) -> None:
        """Append the committed `cps` the file lacks, in order, under a file lock; never a line out of chain."""
        try:
            public = self.key.public_key()
        except SealError:
            return
        try:
            fd = os.open(self.paths.checkpoints, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            log.error("cannot append to audit checkpoints %s: %s", self.paths.checkpoints, exc.strerror)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # other processes holding this key (the CLI, a second daemon)
            with self._file_lock:
                self._append_locked(fd, public, cps)
        except (OSError, SealError) as exc:
            log.error("cannot append to audit checkpoints %s: %s", self.paths.checkpoints,
                      getattr(exc, "strerror", None) or exc)
        finally:
            os.close(fd)

    def _append_locked(self, fd: int, public: Ed25519PublicKey, cps: Sequence[Checkpoint]) -> None:
        if self._appender is None or key_id(self._appender.public) != key_id(public):
            self._appender = CheckpointReader(self.paths.checkpoints, public)
        read = self._appender.read()
        if read.bad_line is not None:
            log.error("%s: not appending to it", read.reason)
            return
        have = {cp.seq: cp for cp in read.valid}
        last_seq = read.valid[-1].seq if read.valid else 0
        prev = line_digest(read.valid[-1].line()) if read.valid else GENESIS
        data = b""
        for cp in cps:
            if cp.seq <= last_seq:
                if cp.seq in have and have[cp.seq].line() != cp.line():
                    log.error("checkpoint for record %d differs from the one in %s: not appending",
                              cp.seq, self.paths.checkpoints)
                    return
                continue
            if cp.prev != prev:
                log.error("checkpoint for record %d does not follow the last line of %s: appended at a later seal",
                          cp.seq, self.paths.checkpoints)
                break
            data += (cp.line() + "\n").encode("ascii")
            prev, last_seq = line_digest(cp.line()), cp.seq
        if data:
            os.write(fd, data)
            os.fsync(fd)

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
            verdict = covering(read.valid, seq)
            if verdict is None:
                last = read.valid[-1].seq if read.valid else 0
                parts.append(f"trusted key {kid} has sealed only through record {last}"
                             + (f" ({read.reason})" if read.reason else ""))
            elif verdict == "unvouched":
                parts.append(f"trusted key {kid} did not witness it")
            else:
                parts.append(f"it does not match the checkpoint of trusted key {kid} (rewritten or inserted)")
        others = untrusted_covering(conn, seq, set(chains))
        if others:
            parts.append(f"checkpoints claiming key {', '.join(others)} cover it, but that key is not in "
                         "[audit] trusted_keys here")
        return f"record {seq}: " + ("; ".join(parts) if parts else "no trusted key to check it with")


def _on_commit(conn: Connection) -> None:
    # Runs before the database commits, so it cannot write the file: Store.begin() does, after the
    # commit (a transaction begun elsewhere has its lines appended at the node's next seal).
    conn.info.pop(_STAGED, None)


def _some(seqs: Sequence[int], shown: int = 20) -> str:
    """At most `shown` record numbers, and how many more."""
    text = ", ".join(map(str, seqs[:shown]))
    return text + (f" and {len(seqs) - shown} more" if len(seqs) > shown else "")


def _on_rollback(conn: Connection) -> None:
    conn.info.pop(_STAGED, None)

