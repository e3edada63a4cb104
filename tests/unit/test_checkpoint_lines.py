"""Checkpoint lines and rows as a database writer might leave them: parsed exactly, or refused with a reason.

`parse_line` / `parse_row` read what `audit_checkpoints` (or a node's file) holds. Whatever the value
(any JSON, any text, bytes, numbers, huge or nested), the answer is a Checkpoint whose line is the
input, byte for byte, or BadCheckpoint saying what is wrong; never another exception.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from watchstander.agent.store.audit import GENESIS, audit_checkpoints
from watchstander.agent.store.seal_keys import key_id
from watchstander.agent.store.seal_lines import (
    MAX_LINE,
    BadCheckpoint,
    Checkpoint,
    line_digest,
    parse_line,
    parse_row,
)
from watchstander.agent.store.seal_store import StoreChainReader, insert_checkpoint

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KID = key_id(KEY.public_key())


def signed(seq: int = 7, unvouched: tuple[int, ...] = ()) -> Checkpoint:
    cp = Checkpoint(seq, "a" * 64, "2026-12-02T00:00:00+00:00", KID, GENESIS, unvouched)
    return replace(cp, sig=base64.b64encode(KEY.sign(cp.message())).decode("ascii"))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=8)
FIELD = st.sampled_from(["seq", "head", "time", "key", "prev", "unvouched", "sig", "extra"])


def _outcome(value: object) -> Checkpoint | str:
    try:
        return parse_line(value)
    except BadCheckpoint as exc:
        assert str(exc), "a refusal says why"
        return str(exc)


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.binary(max_size=100), st.integers(), st.none(), st.floats(), JSON))
def test_any_value_parses_exactly_or_is_refused_with_a_reason(value: Any) -> None:
    out = _outcome(value)
    if isinstance(out, Checkpoint):
        assert out.line() == value  # nothing gained or lost: the signed line is the stored line


@settings(SETTINGS, max_examples=50)
@given(st.dictionaries(FIELD, JSON, max_size=8))
def test_json_objects_with_hostile_fields_are_refused_or_exact(fields: dict[str, Any]) -> None:
    line = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    out = _outcome(line)
    if isinstance(out, Checkpoint):
        assert out.line() == line and out.seq > 0 and all(u > 0 for u in out.unvouched)


@SETTINGS
@given(st.sampled_from(["seq", "head", "time", "key", "prev", "unvouched", "sig"]), JSON)
def test_a_signed_line_with_one_field_replaced_is_refused_or_no_longer_verifies(name: str, value: Any) -> None:
    original = signed(unvouched=(3, 5))
    body = json.loads(original.line())
    if body[name] == value:
        return
    body[name] = value
    line = json.dumps(body, sort_keys=True, separators=(",", ":"))
    out = _outcome(line)
    if isinstance(out, Checkpoint):  # well-formed, but the signature covers every field
        with pytest.raises(Exception):  # noqa: B017  (InvalidSignature or a decoding error)
            KEY.public_key().verify(base64.b64decode(out.sig, validate=True), out.message())


@SETTINGS
@given(st.one_of(st.text(max_size=20), st.integers(), st.none(), st.binary(max_size=8)),
       st.one_of(st.integers(), st.text(max_size=5), st.none(), st.booleans()))
def test_a_row_whose_columns_are_not_its_signed_line_is_refused(key: Any, seq: Any) -> None:
    cp = signed()
    if key == cp.key and seq == cp.seq and not isinstance(seq, bool):
        assert parse_row(key, seq, cp.line()) == cp
        return
    with pytest.raises(BadCheckpoint):
        parse_row(key, seq, cp.line())


@pytest.mark.parametrize("value, reason", [
    (b'{"seq":1}', "not text"),
    ("[" * 100_000 + "]" * 100_000, "not JSON"),  # deeper than the JSON parser recurses
    ("x" * (MAX_LINE + 1), "longer than"),
    (signed().line().replace('"seq":7', '"seq":7.0'), "positive integers"),
    (signed().line().replace('"seq":7', '"seq":true'), "positive integers"),
    (signed().line().replace('"unvouched":[]', '"unvouched":[0]'), "positive integers"),
    (signed().line().replace('"time":"2026', '"time":"\u00e92026'), "not ASCII"),
    (signed().line().replace('"unvouched":[]', '"unvouched":[1e400]'), "positive integers"),
    (signed().line().replace(",", ", "), "canonical"),
    ('{"seq":' + "9" * 5000 + "}", "not JSON"),  # past Python's integer-string limit
    (json.dumps({**json.loads(signed().line()), "more": 1}, sort_keys=True, separators=(",", ":")), "fields"),
])
def test_known_hostile_lines_are_refused_with_their_reason(value: object, reason: str) -> None:
    with pytest.raises(BadCheckpoint, match=reason):
        parse_line(value)


def test_a_signed_line_round_trips() -> None:
    cp = signed(unvouched=(2, 4))
    assert parse_line(cp.line()) == cp and parse_row(KID, 7, cp.line()) == cp


OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
JUNK_LINE = st.one_of(st.text(max_size=40), JSON.map(json.dumps), st.builds(lambda prev: "other-key:" + prev, st.text()))


def _chain(seqs: list[int]) -> list[Checkpoint]:
    """A genuine chain of checkpoints signed by KEY at `seqs`."""
    out: list[Checkpoint] = []
    prev = GENESIS
    for seq in seqs:
        cp = Checkpoint(seq, "a" * 64, "2026-12-02T00:00:00+00:00", KID, prev, ())
        cp = replace(cp, sig=base64.b64encode(KEY.sign(cp.message())).decode("ascii"))
        out.append(cp)
        prev = line_digest(cp.line())
    return out


def _junk(seq: int, text: str) -> str:
    if not text.startswith("other-key:"):
        return text
    # Signed, canonical, with this key's id, chained to anything: but by a key the reader does not hold.
    cp = Checkpoint(seq, "b" * 64, "t", KID, line_digest(text), ())
    return replace(cp, sig=base64.b64encode(OTHER.sign(cp.message())).decode("ascii")).line()


@settings(SETTINGS, max_examples=40)
@given(st.sets(st.integers(1, 60), min_size=1, max_size=12), st.dictionaries(st.integers(1, 70), JUNK_LINE, max_size=6),
       st.integers(0, 12))
def test_junk_rows_are_skipped_never_a_base_and_reported(genuine: set[int], junk: dict[int, str], split: int) -> None:
    """Whatever rows a database writer adds under a key, the reader returns exactly the signer's chain."""
    chain = _chain(sorted(genuine))
    junk = {s: _junk(s, t) for s, t in junk.items() if s not in genuine}
    engine = create_engine("sqlite://")
    audit_checkpoints.metadata.create_all(engine)
    reader = StoreChainReader(KEY.public_key())
    with engine.begin() as conn:
        for seq, line in junk.items():
            conn.execute(audit_checkpoints.insert().values(key=KID, seq=seq, head="", time="", prev="", unvouched="",
                                                           sig="", line=line))
        for cp in chain[:split]:
            insert_checkpoint(conn, cp)
        first = reader.read(conn)  # read part way, then again once the rest is there (incrementally)
        assert first.valid == tuple(chain[:split])
        for cp in chain[split:]:
            insert_checkpoint(conn, cp)
        read = reader.read(conn)
        assert read.valid == tuple(chain)
        assert StoreChainReader(KEY.public_key()).read(conn).valid == tuple(chain)
        fresh = StoreChainReader(KEY.public_key()).read(conn)
        assert (fresh.bad_line is not None) == bool(junk) and (fresh.reason is None) == (not junk)
