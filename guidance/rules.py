"""Deadline rules: the models, and a one-line grammar used in catalogues and on the command line.

Grammar (keywords case-insensitive, any white space between words):

    none
    on YYYY-MM-DD
    N UNIT after order                      N calendar units after the signing date
    N UNIT after OBLIGATION-ID              after that obligation is recorded complete
    N UNIT after event EVENT-NAME           after a named event is recorded
    every N UNIT [from START] [until END]   recurring; START: order | OBLIGATION-ID | event NAME | YYYY-MM-DD
    annually [from START] [until END]       the same as `every 1 year`
                                            END: YYYY-MM-DD | event NAME

UNIT is day(s), week(s), month(s) or year(s). Identifiers are lower-case letters, digits, '.', '_', '-'.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from .errors import RuleSyntaxError

Unit = Literal["days", "weeks", "months", "years"]
IDENT = r"[a-z0-9][a-z0-9._-]*"
_IDENT_RE = re.compile(rf"^{IDENT}$")
_KEYWORDS = frozenset({"none", "on", "after", "order", "event", "every", "annually", "from", "until"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Period(_Frozen):
    """A span counted in calendar units."""

    value: int = Field(ge=1, le=100_000)
    unit: Unit


class OrderStart(_Frozen):
    """Counting from the order's signing date."""

    kind: Literal["order"] = "order"


class ObligationStart(_Frozen):
    """Counting from the day another obligation is recorded complete."""

    kind: Literal["obligation"] = "obligation"
    id: str = Field(pattern=rf"^{IDENT}$")


class EventStart(_Frozen):
    """Counting from the day a named event is recorded (e.g. a waiver granted)."""

    kind: Literal["event"] = "event"
    name: str = Field(pattern=rf"^{IDENT}$")


class DateStart(_Frozen):
    """Counting from a fixed calendar date."""

    kind: Literal["date"] = "date"
    date: date


Anchor = Annotated[Union[OrderStart, ObligationStart, EventStart, DateStart], Field(discriminator="kind")]
EndCondition = Annotated[Union[EventStart, DateStart], Field(discriminator="kind")]


class AfterAnchor(_Frozen):
    """Due a period after an anchor: the order, another obligation's completion, or an event."""

    kind: Literal["after"] = "after"
    period: Period
    anchor: Anchor = OrderStart()


class OnDate(_Frozen):
    """Due on a calendar date."""

    kind: Literal["on"] = "on"
    date: date


class Recurring(_Frozen):
    """Due every period from a start until an end condition (if any)."""

    kind: Literal["every"] = "every"
    period: Period
    start: Anchor = OrderStart()
    until: EndCondition | None = None


class NoDeadline(_Frozen):
    """The clause sets no deadline."""

    kind: Literal["none"] = "none"


DeadlineRule = Annotated[Union[AfterAnchor, OnDate, Recurring, NoDeadline], Field(discriminator="kind")]


def _unit_word(period: Period) -> str:
    return period.unit[:-1] if period.value == 1 else period.unit


def _format_anchor(anchor: OrderStart | ObligationStart | EventStart | DateStart) -> str:
    if isinstance(anchor, OrderStart):
        return "order"
    if isinstance(anchor, ObligationStart):
        return anchor.id
    if isinstance(anchor, EventStart):
        return f"event {anchor.name}"
    return anchor.date.isoformat()


def format_rule(rule: AfterAnchor | OnDate | Recurring | NoDeadline) -> str:
    """The canonical one-line form of a rule; parse_rule(format_rule(r)) == r."""
    if isinstance(rule, NoDeadline):
        return "none"
    if isinstance(rule, OnDate):
        return f"on {rule.date.isoformat()}"
    if isinstance(rule, AfterAnchor):
        return f"{rule.period.value} {_unit_word(rule.period)} after {_format_anchor(rule.anchor)}"
    text = f"every {rule.period.value} {_unit_word(rule.period)} from {_format_anchor(rule.start)}"
    if rule.until is not None:
        text += f" until {_format_anchor(rule.until)}"
    return text


_UNITS: dict[str, Unit] = {"day": "days", "days": "days", "week": "weeks", "weeks": "weeks",
          "month": "months", "months": "months", "year": "years", "years": "years"}


class _Tokens:
    def __init__(self, text: str) -> None:
        self.text = text
        self.words = text.split()
        self.pos = 0

    def peek(self) -> str | None:
        return self.words[self.pos].lower() if self.pos < len(self.words) else None

    def take(self, what: str) -> str:
        if self.pos >= len(self.words):
            raise RuleSyntaxError(f"deadline rule {self.text!r}: expected {what}, found the end")
        word = self.words[self.pos]
        self.pos += 1
        return word

    def expect(self, keyword: str) -> None:
        word = self.take(f"'{keyword}'")
        if word.lower() != keyword:
            raise RuleSyntaxError(f"deadline rule {self.text!r}: expected '{keyword}', found {word!r}")

    def done(self) -> None:
        if self.pos < len(self.words):
            raise RuleSyntaxError(f"deadline rule {self.text!r}: unexpected {' '.join(self.words[self.pos:])!r}")


def _date(tokens: _Tokens, word: str) -> date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", word):
            raise ValueError(word)
        return date.fromisoformat(word)
    except ValueError as exc:
        raise RuleSyntaxError(f"deadline rule {tokens.text!r}: {word!r} is not a YYYY-MM-DD date") from exc


def _ident(tokens: _Tokens, what: str) -> str:
    word = tokens.take(what)
    if not _IDENT_RE.fullmatch(word) or word in _KEYWORDS:
        raise RuleSyntaxError(f"deadline rule {tokens.text!r}: {word!r} is not a valid {what} "
                              "(lower-case letters, digits, '.', '_', '-')")
    return word


def _period(tokens: _Tokens) -> Period:
    number = tokens.take("a number")
    if not number.isdigit() or not number.isascii():
        raise RuleSyntaxError(f"deadline rule {tokens.text!r}: {number!r} is not a whole number")
    value = int(number)
    if not 1 <= value <= 100_000:
        raise RuleSyntaxError(f"deadline rule {tokens.text!r}: {value} is out of range (1..100000)")
    unit_word = tokens.take("a unit (days, weeks, months, years)")
    unit = _UNITS.get(unit_word.lower())
    if unit is None:
        raise RuleSyntaxError(f"deadline rule {tokens.text!r}: unknown unit {unit_word!r}")
    return Period(value=value, unit=unit)


def _anchor(tokens: _Tokens) -> OrderStart | ObligationStart | EventStart | DateStart:
    word = tokens.peek()
    if word is None:
        raise RuleSyntaxError(f"deadline rule {tokens.text!r}: expected what the period counts from")
    if word == "order":
        tokens.take("order")
        return OrderStart()
    if word == "event":
        tokens.take("event")
        return EventStart(name=_ident(tokens, "event name"))
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", word):
        return DateStart(date=_date(tokens, tokens.take("a date")))
    return ObligationStart(id=_ident(tokens, "obligation id"))


def parse_rule(text: str) -> AfterAnchor | OnDate | Recurring | NoDeadline:
    """Parse one rule in the grammar above; raises RuleSyntaxError naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise RuleSyntaxError("deadline rule is empty (write 'none' for no deadline)")
    tokens = _Tokens(text)
    first = tokens.peek()
    rule: AfterAnchor | OnDate | Recurring | NoDeadline
    if first == "none":
        tokens.take("none")
        rule = NoDeadline()
    elif first == "on":
        tokens.take("on")
        rule = OnDate(date=_date(tokens, tokens.take("a date")))
    elif first in ("every", "annually"):
        if tokens.take("every").lower() == "every":
            period = _period(tokens)
        else:
            period = Period(value=1, unit="years")
        start: OrderStart | ObligationStart | EventStart | DateStart = OrderStart()
        until: EventStart | DateStart | None = None
        if tokens.peek() == "from":
            tokens.take("from")
            start = _anchor(tokens)
        if tokens.peek() == "until":
            tokens.take("until")
            end = _anchor(tokens)
            if not isinstance(end, (EventStart, DateStart)):
                raise RuleSyntaxError(f"deadline rule {text!r}: 'until' takes a date or 'event NAME'")
            until = end
        rule = Recurring(period=period, start=start, until=until)
    else:
        period = _period(tokens)
        tokens.expect("after")
        rule = AfterAnchor(period=period, anchor=_anchor(tokens))
    tokens.done()
    return rule


def coerce_rule(value: object) -> object:
    """Pydantic before-validator: accept the one-line form wherever a rule mapping is expected."""
    if isinstance(value, str):
        return parse_rule(value)
    return value
