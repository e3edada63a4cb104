"""Deadline extractor: draft a catalogue of an order's dated obligations for human review.

Public API: `extract`, `extract_file`, `to_json`, `to_yaml_catalogue`, `read_order_meta`.
The rules it follows (and the labelling rules it is measured against) are in docs/extractor.md.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from .extract_models import (
    MAX_TEXT,
    Anchor,
    Duration,
    ExtractedObligation,
    OrderMeta,
)
from .extract_phrases import DeadlineMatch, add_duration, find_deadlines
from .extract_roles import read_roles, sentence_span
from .extract_sections import Clause, clauses, read_meta

__all__ = [
    "Anchor",
    "Duration",
    "ExtractedObligation",
    "OrderMeta",
    "extract",
    "extract_file",
    "read_order_meta",
    "to_json",
    "to_yaml_catalogue",
]

# Definitions and recitals (Purpose, Background, Findings) describe; they set no deadlines.
_SKIPPED_SECTIONS = re.compile(r"\b(?:definitions?|purpose|background|findings)\b", re.IGNORECASE)


def _bounded_text(text: str, start: int, end: int) -> str:
    """The clause text as a substring of the input: stripped, cut to MAX_TEXT characters."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return text[start : min(end, start + MAX_TEXT)]


def _due(hit: DeadlineMatch, signed: dt.date, first_order_due: dt.date | None) -> dt.date | None:
    if hit.anchor == "date":
        return hit.date
    if hit.duration is None:
        return None
    if hit.anchor == "order":
        return add_duration(signed, hit.duration)
    if hit.anchor == "recurring" and hit.thereafter and first_order_due is not None:
        # "Within 90 days ..., and annually thereafter": the second occurrence is one period after the first.
        return add_duration(first_order_due, hit.duration)
    return None


def _from_clause(text: str, clause: Clause, signed: dt.date) -> list[ExtractedObligation]:
    body = text[clause.start : clause.end]
    hits = find_deadlines(body)
    if not hits:
        return []
    items: list[ExtractedObligation] = []
    first_order_due: dt.date | None = None
    for hit in hits:
        s_start, s_end = sentence_span(body, hit.start)
        sentence = body[s_start:s_end]
        roles = read_roles(sentence, hit.start - s_start, hit.end - s_start)
        due = _due(hit, signed, first_order_due)
        if hit.anchor == "order" and first_order_due is None:
            first_order_due = due
        items.append(
            ExtractedObligation(
                section=clause.section,
                phrase=re.sub(r"\s+", " ", hit.phrase).strip(),
                duration=hit.duration,
                anchor=hit.anchor,
                anchor_text=hit.anchor_text,
                due=due,
                recurrence=hit.recurrence,
                responsible=roles.responsible,
                consulted=roles.consulted,
                deliverable=roles.deliverable,
                text=_bounded_text(text, clause.start + s_start, clause.start + s_end),
            )
        )
    return items


def extract(text: str, signed: dt.date) -> list[ExtractedObligation]:
    """Every deadline in an order's text (header skipped), one item per deadline, in document order."""
    out: list[ExtractedObligation] = []
    for clause in clauses(text):
        if _SKIPPED_SECTIONS.search(clause.section_title):
            continue
        out.extend(_from_clause(text, clause, signed))
    return out


def read_order_meta(text: str) -> OrderMeta:
    """The TITLE, DATE (signing date), SOURCE_URL and EO_NUMBER of an order file's header."""
    return read_meta(text)


def extract_file(path: str | Path, signed: dt.date | None = None) -> list[ExtractedObligation]:
    """Extract from an order file; `signed` defaults to the DATE in the file's header."""
    text = Path(path).read_text(encoding="utf-8")
    if signed is None:
        signed = read_meta(text).signed
    if signed is None:
        raise ValueError(f"{path}: no signing date given and no DATE: line in the header")
    return extract(text, signed)


def _public(item: ExtractedObligation) -> dict[str, Any]:
    return {
        "section": item.section,
        "duration": item.duration.model_dump() if item.duration else None,
        "anchor": item.anchor,
        "anchor_text": item.anchor_text,
        "due": item.due.isoformat() if item.due else None,
        "recurrence": item.recurrence,
        "responsible": item.responsible,
        "consulted": list(item.consulted),
        "deliverable": item.deliverable,
        "phrase": item.phrase,
        "text": item.text,
    }


def to_json(items: Iterable[ExtractedObligation]) -> str:
    """The items as a JSON list of objects (section, duration, anchor, due as ISO date or null, ...)."""
    return json.dumps([_public(i) for i in items], indent=2, ensure_ascii=False)


def _obligation_id(order: str, item: ExtractedObligation, seen: dict[str, int]) -> str:
    base = f"{order}-{re.sub(r'[^0-9A-Za-z.]+', '-', item.section).strip('-')}"
    seen[base] = seen.get(base, 0) + 1
    return base if seen[base] == 1 else f"{base}-{seen[base]}"


def to_yaml_catalogue(items: Sequence[ExtractedObligation], order_meta: OrderMeta) -> str:
    """A draft order catalogue in YAML, marked as machine-drafted and needing human review."""
    memo = re.search(r"\b(NSPM|NSM|PPD)[-/ ]?(\d+)", order_meta.title or "")
    order = f"EO{order_meta.number}" if order_meta.number else f"{memo[1]}-{memo[2]}" if memo else "ORDER"
    seen: dict[str, int] = {}
    obligations = []
    for item in items:
        entry = {"id": _obligation_id(order, item, seen), **_public(item), "review": "pending"}
        obligations.append(entry)
    doc = {
        "draft": True,
        "review_status": "DRAFT - machine-extracted, every entry needs human review before use",
        "order": {
            "number": order_meta.number,
            "title": order_meta.title,
            "signed": order_meta.signed.isoformat() if order_meta.signed else None,
            "source_url": order_meta.source_url,
        },
        "obligations": obligations,
    }
    banner = (
        "# DRAFT CATALOGUE - generated by watchstander.guidance.extractor.\n"
        "# Not reviewed. Check every section, responsible official, deliverable and due date\n"
        "# against the order's text before adding this to the tracked catalogues.\n"
    )
    return banner + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
