"""RFC 6587 framing of syslog streams: octet counting and LF lines, detected per connection, bounded while read."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchstander.connectors.syslog import FramingError, StreamFramer


def _octet(msg: bytes) -> bytes:
    return str(len(msg)).encode() + b" " + msg


def _feed_in_pieces(framer: StreamFramer, data: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    for cut in sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]:
        out += framer.feed(data[start:cut])
        start = cut
    return out + framer.close()


def test_octet_counted_frames_of_mixed_sizes_split_anywhere_come_out_whole() -> None:
    """What `logger --octet-count` and rsyslog omfwd send: LEN SP MSG, a message may hold LF."""
    msgs = [b"<34>1 2026-11-27T12:00:00Z h app - - - short", b"<13>x" * 300, b"<13>with\nnewline inside", b"<1>a"]
    stream = b"".join(_octet(m) for m in msgs)
    for step in (1, 2, 3, 7, 64, len(stream)):
        framer = StreamFramer(4096)
        assert _feed_in_pieces(framer, stream, list(range(step, len(stream), step))) == msgs
        assert framer.octet is True


def test_lf_framing_is_detected_from_a_leading_angle_bracket() -> None:
    """Non-transparent framing: a stream starting with '<' is split on LF."""
    framer = StreamFramer(1024)
    assert framer.feed(b"<13>Nov 27 12:00:00 h a: one\n<13>Nov 27 12:00:01 h a: t") == [b"<13>Nov 27 12:00:00 h a: one"]
    assert framer.octet is False
    assert framer.feed(b"wo\n") == [b"<13>Nov 27 12:00:01 h a: two"]
    assert framer.close() == []


def test_a_first_line_starting_with_a_digit_but_no_length_is_read_as_a_line() -> None:
    """A bare ISO timestamp (rsyslog's file format forwarded raw) is not a bogus octet count."""
    framer = StreamFramer(1024)
    assert framer.feed(b"2026-11-27T12:00:00Z h app: x\nnext\n") == [b"2026-11-27T12:00:00Z h app: x", b"next"]
    assert framer.octet is False


@pytest.mark.parametrize("stream", [b"12x <13>hello", b"0 ", b"99999999 <13>", b"5000 " + b"x" * 10])
def test_a_bogus_length_after_a_good_frame_raises(stream: bytes) -> None:
    """Non-digits, a leading zero, or a length above max_message end the connection; frames before it count."""
    framer = StreamFramer(4096)
    assert framer.feed(_octet(b"<13>ok") + stream) == [b"<13>ok"]
    assert isinstance(framer.error, FramingError)
    with pytest.raises(FramingError):
        framer.feed(b"<13>more")


def test_a_length_above_max_message_raises_even_first() -> None:
    """The framer never waits for (and buffers) more than max_message bytes."""
    framer = StreamFramer(1024)
    assert framer.feed(b"1025 <13>") == []
    assert framer.error is not None and not framer._buf


def test_an_endless_line_is_cut_at_max_message_while_reading() -> None:
    """A line with no LF holds at most max_message bytes; the rest of it is discarded up to its LF."""
    framer = StreamFramer(1000)
    out: list[bytes] = []
    out += framer.feed(b"<13>")
    for _ in range(1000):
        out += framer.feed(b"y" * 4096)
        assert len(framer._buf) <= 1000
    out += framer.feed(b"yyy\n<13>after\n")
    assert out == [(b"<13>" + b"y" * 4096)[:1000], b"<13>after"]
    assert framer.truncated == 1


def test_an_overlong_line_inside_one_chunk_is_cut() -> None:
    """Several lines in one read: only the long one is cut."""
    framer = StreamFramer(600)
    assert framer.feed(b"<1>a\n<1>" + b"z" * 700 + b"\n<1>b\n") == [b"<1>a", (b"<1>" + b"z" * 700)[:600], b"<1>b"]
    assert framer.truncated == 1


def test_a_stream_cut_inside_an_octet_frame_is_reported() -> None:
    """A sender that disconnects mid-frame loses that frame, and it is known."""
    framer = StreamFramer(1024)
    framer.feed(b"20 <13>only ten")
    with pytest.raises(FramingError):
        framer.close()


def test_octet_only_refuses_lines() -> None:
    """RFC 5425 (TLS) mandates octet counting."""
    framer = StreamFramer(1024, octet_only=True)
    assert framer.feed(b"<13>a line\n") == []
    assert framer.error is not None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=20), st.lists(st.integers(0, 7000)))
def test_octet_framing_round_trips_under_any_segmentation(msgs: list[bytes], cuts: list[int]) -> None:
    """Every message sent is one message out, whatever the TCP segment boundaries."""
    stream = b"".join(_octet(m) for m in msgs)
    assert _feed_in_pieces(StreamFramer(512), stream, cuts) == msgs


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300).filter(lambda b: b"\n" not in b), min_size=1, max_size=20),
       st.lists(st.integers(0, 7000)))
def test_lf_framing_round_trips_under_any_segmentation(msgs: list[bytes], cuts: list[int]) -> None:
    """LF lines survive any segmentation too (first byte '<' so the framing is LF)."""
    msgs = [b"<" + m for m in msgs]
    stream = b"".join(m + b"\n" for m in msgs)
    assert _feed_in_pieces(StreamFramer(512), stream, cuts) == msgs
