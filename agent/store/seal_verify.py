"""`audit verify` with seals: walk the chain once against this node's file and every trusted signer's rows."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, func, select

from .audit import GENESIS, AuditLog, audit_checkpoints, audit_log, record_hash
from .engine import Store
from .seal_keys import key_id
from .seal_lines import Checkpoint, CheckpointFile, read_checkpoints
from .seal_store import StoreChainReader, show_key, untrusted_covering


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
            others = untrusted_covering(conn, s, set(keys))
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
            after = read.after if read.after is not None else _last_seq(read.valid)
            problems.append((after + 1, read.reason or f"bad row of key {kid}"))
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
        # A prefix of the signed rows: a line not written (a failed append, a crash after the commit).
        notes.append(f"this node's checkpoint file ends at record {file_last} but the store holds its checkpoints "
                     f"through record {store_last}: they are appended to the file at its next seal")
    if file_last > store_last:
        if in_store:
            return [(store_last + 1, (f"the store lacks this node's checkpoints after record {store_last} that its "
                                     f"file holds through record {file_last} (deleted from the database)"))]
        notes.append(f"the store holds none of this node's {len(in_file)} checkpoints yet: they are copied into "
                     "it at its next audited change")
    return []

