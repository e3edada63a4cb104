"""Property tests for the console's two small parsers: the UPN's DER string and the visible-text filter."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from watchstander.agent.console.identity import _der_string
from watchstander.agent.console.security import visible, visible_lines


@given(st.binary(max_size=300))
def test_any_bytes_read_as_a_string_or_none_never_an_exception(raw: bytes) -> None:
    assert _der_string(raw) is None or isinstance(_der_string(raw), str)


@given(st.text(max_size=120))
def test_a_der_utf8_string_reads_back(text: str) -> None:
    body = text.encode("utf-8")
    if len(body) > 127:
        return
    assert _der_string(bytes([0x0C, len(body)]) + body) == text
    assert _der_string(bytes([0xA0, len(body) + 2, 0x0C, len(body)]) + body) == text  # explicit [0] wrapper


@given(st.text(max_size=300))
def test_nothing_invisible_survives_and_plain_text_is_untouched(text: str) -> None:
    shown = visible(text, None)
    assert all(ch == " " or unicodedata.category(ch)[0] not in "CZ" for ch in shown)
    if all(" " <= ch <= "~" for ch in text):
        assert shown == text
    assert all(ch in " \n" or unicodedata.category(ch)[0] not in "CZ" for ch in visible_lines(text, None))
