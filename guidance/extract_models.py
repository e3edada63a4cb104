"""Data models for the deadline extractor: durations, extracted obligations, order metadata."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Unit = Literal["days", "weeks", "months", "years"]
Anchor = Literal["order", "event", "date", "recurring"]

MAX_TEXT = 1200
MAX_DELIVERABLE = 200


class Duration(BaseModel):
    """A span of time as an order states it, e.g. 60 days or 1 year."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: int = Field(ge=0)
    unit: Unit


class ExtractedObligation(BaseModel):
    """One deadline found in an order: where it sits, what it counts from, when it falls due."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    section: str
    phrase: str
    duration: Duration | None = None
    anchor: Anchor
    anchor_text: str | None = None
    due: dt.date | None = None
    recurrence: str | None = None
    responsible: str | None = None
    consulted: tuple[str, ...] = ()
    deliverable: str | None = Field(default=None, max_length=MAX_DELIVERABLE)
    text: str = Field(max_length=MAX_TEXT)


class OrderMeta(BaseModel):
    """What the header of an order file says about the order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str | None = None
    signed: dt.date | None = None
    source_url: str | None = None
    number: str | None = None
