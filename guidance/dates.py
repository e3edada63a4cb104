"""Calendar arithmetic for deadlines, and the US federal holidays a due date may fall on.

Deadlines are counted in calendar days from the signing date ("within 30 days of the date of this
order"), never moved off weekends or holidays; such due dates are only flagged.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from functools import lru_cache

from .rules import Period


def add_period(start: date, period: Period, times: int = 1) -> date:
    """`start` plus `times` periods; months and years clamp to the month's last day (Jan 31 + 1 month = Feb 28)."""
    n = period.value * times
    if period.unit == "days":
        return start + timedelta(days=n)
    if period.unit == "weeks":
        return start + timedelta(weeks=n)
    months = n if period.unit == "months" else 12 * n
    return add_months(start, months)


def add_months(start: date, months: int) -> date:
    """Shift by whole calendar months (negative allowed), clamping the day to the target month's length."""
    index = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(index, 12)
    if year < date.min.year or year > date.max.year:
        raise OverflowError(f"date out of range: {start} + {months} months")
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(start.day, last))


def subtract_period(start: date, period: Period) -> date:
    """`start` minus one period (same clamping as add_period)."""
    if period.unit in ("days", "weeks"):
        days = period.value * (7 if period.unit == "weeks" else 1)
        return start - timedelta(days=days)
    months = period.value if period.unit == "months" else 12 * period.value
    return add_months(start, -months)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _legal_holidays(year: int) -> list[tuple[date, str]]:
    # 5 U.S.C. 6103(a). Inauguration Day is left out: it is a holiday only in the Washington area.
    mon, thu = 0, 3
    days = [
        (date(year, 1, 1), "New Year's Day"),
        (_nth_weekday(year, 1, mon, 3), "Birthday of Martin Luther King, Jr."),
        (_nth_weekday(year, 2, mon, 3), "Washington's Birthday"),
        (_last_weekday(year, 5, mon), "Memorial Day"),
        (date(year, 7, 4), "Independence Day"),
        (_nth_weekday(year, 9, mon, 1), "Labor Day"),
        (_nth_weekday(year, 10, mon, 2), "Columbus Day"),
        (date(year, 11, 11), "Veterans Day"),
        (_nth_weekday(year, 11, thu, 4), "Thanksgiving Day"),
        (date(year, 12, 25), "Christmas Day"),
    ]
    if year >= 2021:
        days.append((date(year, 6, 19), "Juneteenth National Independence Day"))
    return days


@lru_cache(maxsize=256)
def federal_holidays(year: int) -> dict[date, str]:
    """Federal holidays observed in `year` (Saturday ones on the Friday before, Sunday ones on the Monday after)."""
    out: dict[date, str] = {}
    for y in (year, year + 1):  # New Year's Day on a Saturday is observed on Dec 31 of the year before
        for day, name in _legal_holidays(y):
            if day.weekday() == 5:
                day, name = day - timedelta(days=1), f"{name} (observed)"
            elif day.weekday() == 6:
                day, name = day + timedelta(days=1), f"{name} (observed)"
            if day.year == year:
                out[day] = name
    return out


def non_working_reason(day: date) -> str | None:
    """Why `day` is not a federal working day ("Saturday", "Sunday", a holiday's name), or None."""
    if day.weekday() == 5:
        return "Saturday"
    if day.weekday() == 6:
        return "Sunday"
    return federal_holidays(day.year).get(day)


def parse_iso_date(text: str) -> date:
    """Parse YYYY-MM-DD strictly (no times, no other layouts); raises ValueError."""
    text = text.strip()
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(f"not a YYYY-MM-DD date: {text!r}")
    return date.fromisoformat(text)
