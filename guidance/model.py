"""The catalogue model: an order (executive order, NSPM, directive, agency guidance) and its obligations."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .rules import IDENT, DeadlineRule, NoDeadline, coerce_rule

OrderType = Literal["executive-order", "nspm", "directive", "agency-guidance"]
ORDER_TYPE_NAMES: dict[str, str] = {
    "executive-order": "Executive Order",
    "nspm": "National Security Presidential Memorandum",
    "directive": "Directive",
    "agency-guidance": "Agency guidance",
}
SECTION_RE = re.compile(r"^\d+[A-Za-z]?(\([A-Za-z0-9]+\))*$")

Rule = Annotated[DeadlineRule, BeforeValidator(coerce_rule)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Obligation(_Frozen):
    """One thing an order requires someone to do, with its deadline rule."""

    id: str = Field(pattern=rf"^{IDENT}$", max_length=80, description="stable id, unique across catalogues")
    section: str = Field(description="section label as printed, e.g. 2(b) or 3(d)(i)")
    title: str = Field(min_length=3, max_length=160, description="short name for tables")
    clause: str = Field(min_length=10, max_length=400, description="verbatim opening of the clause")
    lead: tuple[str, ...] = Field(default=(), description="officials who must act")
    consulted: tuple[str, ...] = Field(default=(), description="officials consulted or coordinated with")
    all_agencies: bool = Field(default=False, description="the clause binds every agency (so every organisation)")
    deliverable: str = Field(min_length=3, max_length=300)
    deadline: Rule = NoDeadline()
    implements: str | None = Field(default=None, pattern=rf"^{IDENT}$",
                                   description="for site items: the obligation this one implements")
    notes: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _check(self) -> Obligation:
        if not SECTION_RE.fullmatch(self.section):
            raise ValueError(f"section {self.section!r} is not a label like 2(b) or 3(d)(i)")
        if not self.lead and not self.all_agencies and not self.notes:
            raise ValueError("an obligation without a lead official needs all_agencies or a note saying why")
        return self


class Catalogue(_Frozen):
    """One order and the obligations it creates."""

    id: str = Field(pattern=rf"^{IDENT}$", max_length=40, description="short id, e.g. eo14409")
    number: str = Field(min_length=1, max_length=40, description="e.g. 14409 or NSPM-11")
    title: str = Field(min_length=3)
    type: OrderType
    signed: date | None = Field(default=None, description="signing (or issuing) date; rules count from it")
    citation: str = Field(min_length=3)
    source_url: str | None = Field(default=None, pattern=r"^https?://")
    reviewed: str | None = Field(default=None, description="who checked the catalogue against the text, and how")
    obligations: tuple[Obligation, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Catalogue:
        seen: set[str] = set()
        for ob in self.obligations:
            if ob.id in seen:
                raise ValueError(f"duplicate obligation id {ob.id!r}")
            seen.add(ob.id)
            if self.signed is None and _counts_from_order(ob):
                raise ValueError(f"{ob.id}: counts from the order, but the catalogue has no signing date")
        return self

    @property
    def display_name(self) -> str:
        """How reports name the order, e.g. 'EO 14409' or 'NSPM-11'."""
        if self.type == "executive-order":
            return f"EO {self.number}"
        return self.number


def _counts_from_order(ob: Obligation) -> bool:
    rule = ob.deadline
    anchor = getattr(rule, "anchor", None) or getattr(rule, "start", None)
    return anchor is not None and getattr(anchor, "kind", None) == "order"
