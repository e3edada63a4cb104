"""Find deadline phrases in a clause: relative spans, stated dates, recurrences; calendar arithmetic."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from .extract_models import Anchor, Duration, Unit

_SMALL = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}
_WORD = "|".join(sorted([*_SMALL, *_TENS, "hundred"], key=len, reverse=True))
_NUM = (
    rf"(?:\d{{1,3}}(?:,\d{{3}})+|\d{{1,7}}|(?:{_WORD})(?:(?:[ \t-]+and[ \t-]+|[ \t-]+)(?:{_WORD}))*)"
    r"(?:[ \t]*\(\d{1,7}\))?"
)
_UNIT = r"(?:calendar[ \t]+|business[ \t]+)?(?:day|week|month|year)s?"
_SPAN = re.compile(rf"\b(?P<num>{_NUM})[ \t]+(?P<unit>{_UNIT})\b", re.IGNORECASE)
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTH = "|".join(calendar.month_name[1:])
_DATE = re.compile(
    rf"\b(?P<intro>[Bb]y|[Oo]n[ \t]+or[ \t]+before|[Nn]o[ \t]+later[ \t]+than|[Nn]ot[ \t]+later[ \t]+than)"
    rf"[ \t]+(?:the[ \t]+end[ \t]+of[ \t]+)?(?P<month>{_MONTH})[ \t]+(?:(?P<day>\d{{1,2}}),[ \t]*)?(?P<year>\d{{4}})\b"
)

_DEADLINE_INTRO = re.compile(
    r"(?:\b(?:within|(?:no|not)[ \t]+later[ \t]+than|(?:no|not)[ \t]+more[ \t]+than|in[ \t]+no[ \t]+more[ \t]+than)"
    r"(?:[ \t]+a[ \t]+period[ \t]+of)?)[ \t]+$",
    re.IGNORECASE,
)
_EVERY = re.compile(r"\bevery[ \t]+$", re.IGNORECASE)
_OR_AND = re.compile(r"(?:,[ \t]*|\b)(?:or|and)[ \t]+$", re.IGNORECASE)
_NOT_DEADLINE_BEFORE = re.compile(
    r"(?:at[ \t]+least|no[ \t]+less[ \t]+than|not[ \t]+less[ \t]+than|up[ \t]+to|period[ \t]+of|longer[ \t]+than"
    r"|exceed|more[ \t]+than|for|last|past|previous|first|next|over)[ \t]+$",
    re.IGNORECASE,
)
_AFTER = re.compile(r"[ \t]+(?P<rel>of|after|from|following)[ \t]+", re.IGNORECASE)
_THEREAFTER = re.compile(r"[ \t]*,?[ \t]*thereafter\b", re.IGNORECASE)
_ORDER_ANCHOR = re.compile(
    r"(?:the[ \t]+)?(?:effective[ \t]+)?date[ \t]+of[ \t]+(?:this|the)[ \t]+(?:order|memorandum|proclamation|directive)\b"
    r"|(?:this|the)[ \t]+(?:order|memorandum)(?:['’]s)?[ \t]+(?:date|issuance)\b"
    r"|(?:the[ \t]+)?issuance[ \t]+of[ \t]+this[ \t]+(?:order|memorandum)\b"
    r"|this[ \t]+(?:order|memorandum)\b",
    re.IGNORECASE,
)
_ANCHOR_END = re.compile(r"[,;:—–]|\.(?:\s|$)|\s+(?:and|or)\s+(?:in\s+|every\b|at\s+least\b|annually\b)|$")

_RECURRING: tuple[tuple[re.Pattern[str], int, Unit], ...] = (
    (re.compile(r"\b(?:at[ \t]+least[ \t]+)?(?:bi-?annually|semi-?annually|twice[ \t]+(?:a|per|each)[ \t]+year)\b", re.I), 6, "months"),
    (re.compile(r"\bbiennially\b|\bevery[ \t]+other[ \t]+year\b", re.I), 2, "years"),
    (re.compile(r"\b(?:at[ \t]+least[ \t]+)?annually(?:[ \t]+thereafter)?\b"
                r"|\bon[ \t]+(?:at[ \t]+least[ \t]+)?an[ \t]+annual[ \t]+basis(?:[ \t]+thereafter)?\b"
                r"|\bannual[ \t]+(?:reports?|reviews?|updates?|assessments?|certifications?)\b"
                r"|\bevery[ \t]+year\b|\bonce[ \t]+(?:a|per|each)[ \t]+year\b", re.I), 1, "years"),
    (re.compile(r"\b(?:at[ \t]+least[ \t]+)?quarterly\b|\bon[ \t]+a[ \t]+quarterly[ \t]+basis\b|\bevery[ \t]+quarter\b", re.I), 3, "months"),
    (re.compile(r"\b(?:at[ \t]+least[ \t]+)?monthly\b|\bon[ \t]+a[ \t]+monthly[ \t]+basis\b|\bevery[ \t]+month\b", re.I), 1, "months"),
    (re.compile(r"\b(?:at[ \t]+least[ \t]+)?weekly\b|\bon[ \t]+a[ \t]+weekly[ \t]+basis\b|\bevery[ \t]+week\b", re.I), 1, "weeks"),
)
_MAX_ANCHOR = 240


@dataclass(frozen=True)
class DeadlineMatch:
    """A deadline phrase found at [start, end) of a clause."""

    start: int
    end: int
    phrase: str
    anchor: Anchor
    duration: Duration | None = None
    anchor_text: str | None = None
    date: dt.date | None = None
    recurrence: str | None = None
    thereafter: bool = False


def parse_number(text: str) -> int | None:
    """Read "60", "1,000", "sixty", "one hundred and eighty" or "thirty (30)" as an integer."""
    paren = re.search(r"\((\d{1,7})\)", text)
    if paren:
        return int(paren.group(1))
    digits = text.replace(",", "").strip()
    if digits.isdigit():
        return int(digits)
    total, current = 0, 0
    for word in re.split(r"[\s-]+", text.lower()):
        if word in ("", "and"):
            continue
        if word in _SMALL:
            current += _SMALL[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        else:
            return None
    total += current
    return total or None


def _unit(text: str) -> Unit:
    word = text.lower().split()[-1].rstrip("s")
    unit: Unit = "days"
    if word == "week":
        unit = "weeks"
    elif word == "month":
        unit = "months"
    elif word == "year":
        unit = "years"
    return unit


def add_duration(start: dt.date, duration: Duration) -> dt.date | None:
    """Calendar arithmetic: days and weeks exactly; months and years by calendar month, clamped to month end."""
    try:
        if duration.unit == "days":
            return start + dt.timedelta(days=duration.value)
        if duration.unit == "weeks":
            return start + dt.timedelta(weeks=duration.value)
        months = duration.value * (12 if duration.unit == "years" else 1)
        year, month0 = divmod(start.month - 1 + months, 12)
        year += start.year
        day = min(start.day, calendar.monthrange(year, month0 + 1)[1])
        return dt.date(year, month0 + 1, day)
    except (OverflowError, ValueError):
        return None


def _anchor_span(text: str, pos: int) -> tuple[str, int]:
    m = _ANCHOR_END.search(text, pos)
    end = m.start() if m else len(text)
    end = min(end, pos + _MAX_ANCHOR)
    return text[pos:end].strip(), end


def _relative(text: str, m: re.Match[str], prev: DeadlineMatch | None) -> DeadlineMatch | None:
    before = text[max(0, m.start() - 60) : m.start()]
    value = parse_number(m.group("num"))
    if value is None:
        return None
    duration = Duration(value=value, unit=_unit(m.group("unit")))
    after = _AFTER.match(text, m.end())
    if _EVERY.search(before):
        start = m.start() - len(before) + _EVERY.search(before).start()  # type: ignore[union-attr]
        there = _THEREAFTER.match(text, m.end())
        end = there.end() if there else m.end()
        return DeadlineMatch(start, end, text[start:end], "recurring", duration, recurrence=text[start:end].strip(),
                             thereafter=there is not None)
    intro = _DEADLINE_INTRO.search(before)
    chained = prev is not None and prev.anchor != "recurring" and _OR_AND.search(before) is not None
    bare = after is not None and after.group("rel").lower() in ("after", "following")
    if intro is None and not chained and not (bare and not _NOT_DEADLINE_BEFORE.search(before)):
        return None
    if intro is None and _NOT_DEADLINE_BEFORE.search(before):
        return None
    start = m.start() - len(before) + intro.start() if intro else m.start()
    if after is None:
        # A bare "within 1 year" counts from the order itself.
        return DeadlineMatch(start, m.end(), text[start : m.end()], "order", duration)
    anchor_pos = after.end()
    order = _ORDER_ANCHOR.match(text, anchor_pos)
    if order is not None:
        return DeadlineMatch(start, order.end(), text[start : order.end()], "order", duration)
    anchor_text, end = _anchor_span(text, anchor_pos)
    if not anchor_text:
        return DeadlineMatch(start, m.end(), text[start : m.end()], "order", duration)
    return DeadlineMatch(start, end, text[start:end], "event", duration, anchor_text=anchor_text)


def _stated_date(m: re.Match[str]) -> dt.date | None:
    month = _MONTHS[m.group("month").lower()]
    year = int(m.group("year"))
    try:
        if m.group("day"):
            return dt.date(year, month, int(m.group("day")))
        return dt.date(year, month, calendar.monthrange(year, month)[1])
    except ValueError:
        return None


def find_deadlines(text: str) -> list[DeadlineMatch]:
    """Every deadline phrase in a clause, in order of appearance, one per deadline."""
    found: list[DeadlineMatch] = []
    prev: DeadlineMatch | None = None
    for m in _SPAN.finditer(text):
        hit = _relative(text, m, prev)
        if hit is not None:
            found.append(hit)
            prev = hit
    for m in _DATE.finditer(text):
        date = _stated_date(m)
        if date is not None:
            found.append(DeadlineMatch(m.start(), m.end(), m.group(0), "date", date=date))
    periods = {(d.duration.value, d.duration.unit) for d in found if d.anchor == "recurring" and d.duration}
    for pattern, value, unit in _RECURRING:
        for m in pattern.finditer(text):
            if (value, unit) in periods:
                continue
            periods.add((value, unit))
            found.append(DeadlineMatch(m.start(), m.end(), m.group(0), "recurring", Duration(value=value, unit=unit),
                                       recurrence=m.group(0), thereafter="thereafter" in m.group(0).lower()))
    found.sort(key=lambda d: d.start)
    return found
