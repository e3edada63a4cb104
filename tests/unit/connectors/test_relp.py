"""RELP framing and the server session: what librelp's client sends, and what a hostile one might."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from watchstander.connectors.relp import FrameParser, RelpSession, frame

OPEN = frame(1, "open", b"relp_version=0\nrelp_software=librelp,1.11.0,https://libreLP.adiscon.com\ncommands=syslog")


def _open() -> RelpSession:
    s = RelpSession(1024, software="watchstander,test")
    ex = s.feed(OPEN)
    assert ex.reply.startswith(b"1 rsp ") and b"200 OK\nrelp_version=0\n" in ex.reply and b"commands=syslog" in ex.reply
    assert not ex.closed and s.opened
    return s


def test_a_session_acknowledges_each_message_by_its_txnr_and_closes_cleanly() -> None:
    s = _open()
    ex = s.feed(frame(2, "syslog", b"<13>Dec  1 10:00:00 h sshd[1]: one") + frame(3, "syslog", b"<13>two"))
    assert ex.messages == [b"<13>Dec  1 10:00:00 h sshd[1]: one", b"<13>two"]
    assert ex.reply == b"2 rsp 6 200 OK\n3 rsp 6 200 OK\n"
    ex = s.feed(frame(4, "close"))
    assert ex.reply == b"4 rsp 0\n" and ex.closed


def test_frames_split_anywhere_are_reassembled() -> None:
    s = _open()
    data = frame(2, "syslog", b"a message with\nan LF inside") + frame(3, "syslog", b"x" * 1000)
    got: list[bytes] = []
    for i in range(len(data)):
        got += s.feed(data[i:i + 1]).messages
    assert got == [b"a message with\nan LF inside", b"x" * 1000]


def test_protocol_errors_end_the_session_with_serverclose() -> None:
    for bad in (frame(1, "syslog", b"before open"), b"1 open 99999999 x\n", b"x open 0\n", b"1 op3n 0\n",
                b"1 syslog 5 abcdefgh\n", b"1 open 5\n", b"1 " + b"a" * 40 + b" 0\n"):
        ex = RelpSession(1024).feed(bad)
        assert ex.closed and ex.error and ex.reply.endswith(b"0 serverclose 0\n"), bad
    s = _open()
    ex = s.feed(frame(2, "syslog", b"kept") + frame(2, "syslog", b"replayed txnr"))
    assert ex.messages == [b"kept"] and ex.reply.startswith(b"2 rsp 6 200 OK\n") and ex.closed


def test_a_message_over_the_limit_is_refused_not_buffered() -> None:
    s = _open()
    ex = s.feed(b"2 syslog 2000 " + b"x" * 10)
    assert ex.closed and "over the limit" in (ex.error or "")


def test_unknown_commands_get_500_and_the_session_goes_on() -> None:
    s = _open()
    ex = s.feed(frame(2, "starttls") + frame(3, "syslog", b"m"))
    assert ex.reply == b"2 rsp 25 500 command not supported\n3 rsp 6 200 OK\n" and ex.messages == [b"m"]


def test_a_client_without_the_syslog_command_is_refused() -> None:
    ex = RelpSession(1024).feed(frame(1, "open", b"relp_version=0\ncommands=other"))
    assert ex.closed and b"500 required command not supported by client" in ex.reply


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_any_bytes_in_any_chunks_never_raise_and_stay_bounded(data: bytes, chunk: int) -> None:
    s = RelpSession(64)
    s.feed(OPEN)
    for i in range(0, len(data), chunk):
        ex = s.feed(data[i:i + chunk])
        assert all(len(m) <= 64 for m in ex.messages)
        assert len(s.parser._buf) <= 64 + 80
        if ex.closed:
            break


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=20))
def test_encoded_frames_parse_back(messages: list[bytes]) -> None:
    parser = FrameParser(64)
    wire = b"".join(frame(i + 1, "syslog", m) for i, m in enumerate(messages))
    frames = parser.feed(wire)
    assert [f.data for f in frames] == messages and parser.error is None and not parser.pending
