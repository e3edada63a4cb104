"""Deadline-rule grammar: examples, errors, and a round-trip property over every rule shape."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchstander.guidance.errors import RuleSyntaxError
from watchstander.guidance.rules import (
    AfterAnchor,
    DateStart,
    EventStart,
    NoDeadline,
    ObligationStart,
    OnDate,
    OrderStart,
    Period,
    Recurring,
    format_rule,
    parse_rule,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("30 days after order", AfterAnchor(period=Period(value=30, unit="days"))),
    ("  60   DAYS  After  ORDER ", AfterAnchor(period=Period(value=60, unit="days"))),
    ("1 year after nspm11-3a", AfterAnchor(period=Period(value=1, unit="years"), anchor=ObligationStart(id="nspm11-3a"))),
    ("30 days after event nspm11-waiver-granted",
     AfterAnchor(period=Period(value=30, unit="days"), anchor=EventStart(name="nspm11-waiver-granted"))),
    ("on 2026-09-01", OnDate(date=date(2026, 9, 1))),
    ("none", NoDeadline()),
    ("annually", Recurring(period=Period(value=1, unit="years"))),
    ("every 1 year from nspm11-3e", Recurring(period=Period(value=1, unit="years"), start=ObligationStart(id="nspm11-3e"))),
    ("every 2 weeks from 2026-07-01 until event done",
     Recurring(period=Period(value=2, unit="weeks"), start=DateStart(date=date(2026, 7, 1)), until=EventStart(name="done"))),
    ("6 months after 2026-01-31", AfterAnchor(period=Period(value=6, unit="months"), anchor=DateStart(date=date(2026, 1, 31)))),
])
def test_examples(text: str, expected: object) -> None:
    assert parse_rule(text) == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "empty"),
    ("30 fortnights after order", "unknown unit"),
    ("thirty days after order", "not a whole number"),
    ("0 days after order", "out of range"),
    ("30 days before order", "expected 'after'"),
    ("30 days after", "expected what the period counts from"),
    ("on 2026-02-30", "not a YYYY-MM-DD"),
    ("30 days after Order-X", "not a valid obligation id"),
    ("every 1 year until order", "'until' takes a date"),
    ("30 days after order please", "unexpected"),
    ("30 days after event", "expected event name"),
    ("30 days after every", "not a valid obligation id"),
])
def test_errors_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(RuleSyntaxError, match=fragment):
        parse_rule(text)


idents = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True).filter(
    lambda s: s not in {"none", "on", "after", "order", "event", "every", "annually", "from", "until"})
periods = st.builds(Period, value=st.integers(1, 100_000), unit=st.sampled_from(["days", "weeks", "months", "years"]))
dates = st.dates(date(1900, 1, 1), date(2200, 12, 31))
anchors = st.one_of(st.just(OrderStart()), st.builds(ObligationStart, id=idents), st.builds(EventStart, name=idents),
                    st.builds(DateStart, date=dates))
ends = st.one_of(st.none(), st.builds(EventStart, name=idents), st.builds(DateStart, date=dates))
rules = st.one_of(
    st.just(NoDeadline()), st.builds(OnDate, date=dates), st.builds(AfterAnchor, period=periods, anchor=anchors),
    st.builds(Recurring, period=periods, start=anchors, until=ends),
)


@given(rules)
def test_format_then_parse_round_trips(rule: object) -> None:
    assert parse_rule(format_rule(rule)) == rule  # type: ignore[arg-type]


@given(rules)
def test_white_space_is_free(rule: object) -> None:
    text = format_rule(rule)  # type: ignore[arg-type]
    assert parse_rule("  " + text.replace(" ", " \t  ") + "\n") == rule


@given(st.sampled_from(["30 days after order", "every 1 year from order", "none", "on 2026-01-01", "annually"]),
       st.sampled_from([str.upper, str.title, str.lower]))
def test_keywords_ignore_case(text: str, case: object) -> None:
    assert parse_rule(case(text)) == parse_rule(text)  # type: ignore[operator]


@given(st.text(max_size=60))
def test_arbitrary_text_raises_only_rule_syntax_error(text: str) -> None:
    try:
        rule = parse_rule(text)
    except RuleSyntaxError:
        return
    assert parse_rule(format_rule(rule)) == rule
