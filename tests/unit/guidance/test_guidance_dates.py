"""Calendar arithmetic and US federal holidays."""

from __future__ import annotations

import calendar
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchstander.guidance.dates import (
    add_months,
    add_period,
    federal_holidays,
    non_working_reason,
    parse_iso_date,
    subtract_period,
)
from watchstander.guidance.rules import Period


def test_order_deadlines_are_calendar_days() -> None:
    signed = date(2026, 6, 2)
    assert add_period(signed, Period(value=30, unit="days")) == date(2026, 7, 2)
    assert add_period(signed, Period(value=60, unit="days")) == date(2026, 8, 1)
    assert add_period(date(2026, 6, 5), Period(value=120, unit="days")) == date(2026, 10, 3)


def test_month_arithmetic_clamps_to_month_end() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_period(date(2028, 2, 29), Period(value=1, unit="years")) == date(2029, 2, 28)
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)


@given(st.dates(date(1900, 1, 1), date(2400, 12, 31)), st.integers(-1200, 1200))
def test_add_months_properties(start: date, months: int) -> None:
    result = add_months(start, months)
    assert (result.year * 12 + result.month) - (start.year * 12 + start.month) == months
    assert result.day == min(start.day, calendar.monthrange(result.year, result.month)[1])


@given(st.dates(date(1900, 1, 1), date(2400, 12, 31)), st.integers(1, 5000),
       st.sampled_from(["days", "weeks", "months", "years"]))
def test_add_then_subtract_never_overshoots(start: date, n: int, unit: str) -> None:
    period = Period(value=n, unit=unit)  # type: ignore[arg-type]
    later = add_period(start, period)
    assert later > start
    back = subtract_period(later, period)
    assert back <= start if unit in ("months", "years") else back == start


@given(st.dates(date(1900, 1, 1), date(2400, 12, 31)), st.integers(1, 40))
def test_multiples_are_monotonic(start: date, k: int) -> None:
    period = Period(value=1, unit="months")
    assert add_period(start, period, k) < add_period(start, period, k + 1)


def test_federal_holidays_2026() -> None:
    # OPM's 2026 list: Independence Day (a Saturday) is observed on Friday July 3.
    assert sorted(federal_holidays(2026)) == [
        date(2026, 1, 1), date(2026, 1, 19), date(2026, 2, 16), date(2026, 5, 25), date(2026, 6, 19),
        date(2026, 7, 3), date(2026, 9, 7), date(2026, 10, 12), date(2026, 11, 11), date(2026, 11, 26),
        date(2026, 12, 25),
    ]
    assert federal_holidays(2026)[date(2026, 7, 3)] == "Independence Day (observed)"


def test_new_year_on_saturday_is_observed_the_year_before() -> None:
    assert date(2021, 12, 31) in federal_holidays(2021)  # Jan 1 2022 was a Saturday
    assert date(2022, 1, 1) not in federal_holidays(2022)


@given(st.integers(1990, 2300))
def test_holidays_are_weekdays_in_their_year(year: int) -> None:
    days = federal_holidays(year)
    # 9 when New Year's Day moved to the year before (before Juneteenth existed), up to 12 when it moved in.
    assert 9 <= len(days) <= 12
    assert all(d.year == year and d.weekday() < 5 for d in days)


def test_non_working_reason() -> None:
    assert non_working_reason(date(2026, 8, 1)) == "Saturday"
    assert non_working_reason(date(2026, 7, 12)) == "Sunday"
    assert non_working_reason(date(2026, 7, 3)) == "Independence Day (observed)"
    assert non_working_reason(date(2026, 7, 2)) is None


@pytest.mark.parametrize("text", ["2026-7-1", "2026/07/01", "20260701", "2026-07-01T00:00", ""])
def test_parse_iso_date_is_strict(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso_date(text)


@given(st.dates())
def test_parse_iso_date_round_trips(d: date) -> None:
    if d.year >= 1000:
        assert parse_iso_date(d.isoformat()) == d
