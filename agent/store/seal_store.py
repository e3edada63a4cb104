"""Signers' checkpoints in the store's `audit_checkpoints`: reading each chain, and whether a record is vouched for."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, func, select

from .audit import GENESIS, audit_checkpoints, audit_log, record_hash
from .seal_keys import key_id
from .seal_lines import (
    BadCheckpoint,
    Checkpoint,
    CheckpointFile,
    CheckpointReader,
    chain_problem,
    line_digest,
    parse_row,
)


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
        bad: CheckpointFile | None = None
        for row in rows:
            try:
                cp = parse_row(self.key, row.seq, row.line)
                problem = chain_problem(self.public, self.key, cp, prev, valid[-1].seq if valid else 0)
            except BadCheckpoint as exc:
                problem = str(exc)
            if problem is not None:
                # Skipped, never a base for the chain: a junk row would otherwise fork the signer's chain.
                if bad is None:
                    bad = CheckpointFile((), len(valid) + 1,
                                         f"checkpoint of key {self.key} in the store for record {row.seq}: {problem}",
                                         after=valid[-1].seq if valid else 0)
                continue
            valid.append(cp)
            lines.append(row.line)
            prev = line_digest(row.line)
        self._valid, self._lines = valid, lines
        if bad is not None:
            return replace(bad, valid=tuple(valid))
        return CheckpointFile(tuple(valid))

    def lines(self) -> list[str]:
        """The verified lines read so far, in order (as stored)."""
        with self._lock:
            return list(self._lines)

    def still_stored(self, conn: Connection, cps: Sequence[Checkpoint]) -> bool:
        """Whether every one of `cps` is still in the store as it was read (rows deleted since: fail safe)."""
        wanted = {cp.seq: cp.line() for cp in cps}
        if not wanted:
            return True
        t = audit_checkpoints
        found = {row.seq: row.line for row in conn.execute(
            select(t.c.seq, t.c.line).where(t.c.key == self.key, t.c.seq.in_(list(wanted))))}
        return found == wanted


def insert_checkpoint(conn: Connection, cp: Checkpoint) -> None:
    """Put `cp` into the store, replacing whatever row claims its key and seq (a signed line outranks it)."""
    t = audit_checkpoints
    conn.execute(t.delete().where(t.c.key == cp.key, t.c.seq == cp.seq))
    conn.execute(t.insert().values(key=cp.key, seq=cp.seq, head=cp.head, time=cp.time, prev=cp.prev,
                                   unvouched=json.dumps(list(cp.unvouched)), sig=cp.sig, line=cp.line()))


def show_key(key: object) -> str:
    """A key id as found in the store, safe to print: 16 hex digits as they are, anything else quoted and cut."""
    if isinstance(key, str) and len(key) == 16 and all(c in "0123456789abcdef" for c in key):
        return key
    return ascii(key)[:40]


def untrusted_covering(conn: Connection, seq: int, trusted: set[str]) -> list[str]:
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


def covering(cps: Sequence[Checkpoint], seq: int) -> tuple[Checkpoint | None, Checkpoint] | str | None:
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
    around = covering(checkpoints.read().valid, seq)
    return isinstance(around, tuple) and stretch_matches(conn, *around)


def store_record_is_sealed(conn: Connection, seq: int, chain: StoreChainReader) -> bool:
    """Like `record_is_sealed`, for one signer's checkpoints in the store; the two rows used must still be there."""
    around = covering(chain.read(conn).valid, seq)
    if not isinstance(around, tuple):
        return False
    before, cp = around
    used = [cp] if before is None else [before, cp]
    return chain.still_stored(conn, used) and stretch_matches(conn, before, cp)


def stretch_matches(conn: Connection, before: Checkpoint | None, cp: Checkpoint) -> bool:
    """Whether the records after `before` (or from the first) through `cp` are the ones `cp` signed."""
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

