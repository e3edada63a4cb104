"""Score the extractor against hand labels: true/false positives, false negatives, recall, precision."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .extract_models import ExtractedObligation
from .extractor import extract

Key = tuple[str, str, str]


@dataclass(frozen=True)
class LabelFile:
    """One order's hand labels, as stored in tests/data/order_labels/<stem>.yaml."""

    order: str
    file: str
    signed: dt.date
    split: str
    labels: tuple[dict[str, Any], ...]
    excluded: str | None = None


@dataclass
class Score:
    """Counts for one order (or a sum of orders) and the keys behind them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    due_checked: int = 0
    due_wrong: int = 0
    false_positives: list[Key] = field(default_factory=list)
    false_negatives: list[Key] = field(default_factory=list)

    @property
    def recall(self) -> float:
        """Share of labelled deadlines the extractor found (1.0 when there are none)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def precision(self) -> float:
        """Share of extracted deadlines that match a label (1.0 when nothing was extracted)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    def add(self, other: Score) -> None:
        """Add another score's counts into this one."""
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.due_checked += other.due_checked
        self.due_wrong += other.due_wrong


def load_labels(path: Path) -> LabelFile:
    """Read one label file."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return LabelFile(
        order=str(doc["order"]),
        file=str(doc["file"]),
        signed=dt.date.fromisoformat(str(doc["signed"])),
        split=str(doc["split"]),
        labels=tuple(doc.get("labels") or ()),
        excluded=doc.get("excluded"),
    )


def _deadline(anchor: str, duration: dict[str, Any] | None, due: str | None) -> str:
    if anchor == "date":
        return f"date {due}"
    if duration is None:
        return anchor
    return f"{anchor} {duration['value']} {duration['unit']}"


def label_key(label: dict[str, Any]) -> Key:
    """(section, deadline, "") for a label: the deadline is anchor + duration, or the stated date."""
    due = label.get("due")
    return (str(label["section"]), _deadline(str(label["anchor"]), label.get("duration"), str(due) if due else None), "")


def item_key(item: ExtractedObligation) -> Key:
    """The same key for an extracted item."""
    duration = item.duration.model_dump() if item.duration else None
    return (item.section, _deadline(item.anchor, duration, item.due.isoformat() if item.due else None), "")


def score(labels: LabelFile, items: list[ExtractedObligation]) -> Score:
    """Match items to labels one-to-one on (section, deadline) and count."""
    want = Counter(label_key(lab) for lab in labels.labels)
    got = Counter(item_key(i) for i in items)
    result = Score()
    matched = want & got
    result.tp = sum(matched.values())
    result.false_negatives = sorted((want - got).elements())
    result.false_positives = sorted((got - want).elements())
    result.fn = len(result.false_negatives)
    result.fp = len(result.false_positives)
    due_by_key = {label_key(lab): lab.get("due") for lab in labels.labels}
    for item in items:
        key = item_key(item)
        if key in matched and due_by_key.get(key):
            result.due_checked += 1
            if item.due is None or item.due.isoformat() != str(due_by_key[key]):
                result.due_wrong += 1
    return result


def score_file(labels: LabelFile, orders_dir: Path) -> Score:
    """Run the extractor on the labelled order's text and score it."""
    text = (orders_dir / labels.file).read_text(encoding="utf-8")
    return score(labels, extract(text, labels.signed))
