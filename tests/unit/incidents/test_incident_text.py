"""Texts, assignees and listing filters that the incident lifecycle accepts, and the typed refusals of the rest."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchstander.agent.app.incident_lifecycle import MAX_TEXT, check_assignee, check_text
from watchstander.agent.app.incident_query import MAX_PAGE, query_from_params
from watchstander.agent.errors import Exit, IncidentInputError, InputError

REFUSED = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def _acceptable(text: str) -> bool:
    return (bool(text.strip()) and len(text) <= MAX_TEXT
            and all(ch in "\n\t" or unicodedata.category(ch) not in REFUSED for ch in text))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=MAX_TEXT + 50))
def test_any_text_is_kept_exactly_or_refused_with_a_reason(text: str) -> None:
    try:
        kept = check_text(text, "comment")
    except IncidentInputError as exc:
        assert not _acceptable(text)
        assert exc.reason in {"empty_text", "text_too_long", "bad_text"} and exc.exit_status == Exit.INPUT
    else:
        assert kept == text and _acceptable(text)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=REFUSED), min_size=1, max_size=MAX_TEXT - 2),
       st.sampled_from(["\x1b[2J", "\u202e", "\u200b", "\u2028", "\x00", "\x9b", "\ud800"]))
def test_a_control_or_bidi_character_anywhere_is_refused(text: str, bad: str) -> None:
    with pytest.raises(IncidentInputError) as err:
        check_text("x" + text[: len(text) // 2] + bad + text[len(text) // 2:], "reason")
    assert err.value.reason == "bad_text"


def test_bounds_and_emptiness() -> None:
    assert check_text("a" * MAX_TEXT) == "a" * MAX_TEXT
    assert check_text("line one\n\tline two") == "line one\n\tline two"
    for text, reason in (("a" * (MAX_TEXT + 1), "text_too_long"), ("  \n\t", "empty_text"), ("", "empty_text"),
                         (42, "bad_text")):
        with pytest.raises(IncidentInputError) as err:
            check_text(text)
        assert err.value.reason == reason


def test_assignee_is_one_visible_line() -> None:
    assert check_assignee("uid:1001:olga") == "uid:1001:olga"
    assert check_assignee("Olga Petrova") == "Olga Petrova"
    for bad in ("", " olga", "olga\n", "ol\u202ega", "o" * 201, "ol\tga"):
        with pytest.raises(IncidentInputError) as err:
            check_assignee(bad)
        assert err.value.reason == "bad_assignee"


def test_query_parameters_are_checked() -> None:
    q = query_from_params({"min_severity": "high", "status": ["open", "acknowledged"], "detector": "portscan",
                           "search": "50%_off", "asset": "10.20.", "seen_after": "2026-11-27T00:00:00Z",
                           "seen_before": 1_800_000_000, "limit": 20, "offset": 40})
    assert q.min_severity == "high" and q.statuses == frozenset({"open", "acknowledged"})
    assert q.seen_after == 1_795_737_600.0 and q.seen_before == 1_800_000_000.0
    assert (q.limit, q.offset, q.text, q.asset) == (20, 40, "50%_off", "10.20.")
    assert query_from_params({"status": "closed"}).statuses == frozenset({"closed"})
    for bad in ({"min_severity": "huge"}, {"status": ["open", "gone"]}, {"status": []}, {"limit": MAX_PAGE + 1},
                {"limit": True}, {"offset": -1}, {"seen_after": "2026-11-27"}, {"seen_after": float("nan")},
                {"search": "x" * 301}, {"detector": 3}, {"colour": "red"}):
        with pytest.raises(InputError):
            query_from_params(bad)
