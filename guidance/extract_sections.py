"""Split an order's text into clauses and label each with its full section number, e.g. "3(d)(i)"."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from .extract_models import OrderMeta

_HEADER_RULE = re.compile(r"^={10,}[ \t]*$", re.MULTILINE)
_HEADER_FIELD = re.compile(r"^([A-Z_]{2,20}):[ \t]*(.*)$", re.MULTILINE)
_HEADER_SCAN = 6000

_SEC = re.compile(r"(?:Section|Sec\.)[ \t]*(\d{1,3}[A-Za-z]?)\.[ \t]*")
_SUBSEC = re.compile(r"(\d{1,3}\.\d{1,3})\.[ \t]+")
_LABEL = re.compile(r"\(([a-z]{1,7}|[A-Z]|\d{1,2})\)[ \t]*")
_TITLE_END = re.compile(r"\.(?=\s|\(|[A-Z]|$)")
_UNIT_START = re.compile(r"[ \t]*(?:\(([a-z]{1,7}|[A-Z]|\d{1,2})\)|Sec\.|Section\s+\d|\d{1,3}\.\d{1,3}\.\s)")
_NONBLANK_LINE = re.compile(r"[^\n]*\S[^\n]*")

_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50}
_MAX_TITLE_WORDS = 14


@dataclass(frozen=True)
class Clause:
    """A paragraph of the order's body with its section label and its span in the input."""

    section: str
    section_title: str
    start: int
    end: int


def split_header(text: str) -> tuple[str, int]:
    """Return the header text (or "") and the offset where the order's body starts."""
    match = _HEADER_RULE.search(text, 0, _HEADER_SCAN)
    if match is None or not _HEADER_FIELD.search(text, 0, match.start()):
        return "", 0
    return text[: match.start()], match.end()


def read_meta(text: str) -> OrderMeta:
    """Read TITLE, DATE, SOURCE_URL and EO_NUMBER from an order file's header, if it has one."""
    header, _ = split_header(text)
    fields = {m.group(1): m.group(2).strip() for m in _HEADER_FIELD.finditer(header)}
    signed: dt.date | None = None
    date_text = fields.get("DATE", "")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date_text):
        try:
            signed = dt.date.fromisoformat(date_text)
        except ValueError:
            signed = None
    number = fields.get("EO_NUMBER")
    return OrderMeta(
        title=fields.get("TITLE") or None,
        signed=signed,
        source_url=fields.get("SOURCE_URL") or None,
        number=number.split()[0] if number else None,
    )


def _roman_value(label: str) -> int | None:
    if not label or any(c not in _ROMAN for c in label):
        return None
    total = 0
    for i, c in enumerate(label):
        v = _ROMAN[c]
        nxt = _ROMAN[label[i + 1]] if i + 1 < len(label) else 0
        total += -v if v < nxt else v
    return total if _to_roman(total) == label else None


def _to_roman(n: int) -> str:
    out = ""
    for v, s in ((50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")):
        while n >= v:
            out += s
            n -= v
    return out


def _is_letter(label: str) -> bool:
    return label.islower() and len(set(label)) == 1


def _next_letter(label: str) -> str:
    c = label[0]
    if c == "z":
        return "a" * (len(label) + 1)
    return chr(ord(c) + 1) * len(label)


def _kinds(label: str) -> list[str]:
    kinds = []
    if label.isdigit():
        kinds.append("digit")
    elif label.isupper():
        kinds.append("upper")
    else:
        if _is_letter(label):
            kinds.append("letter")
        if _roman_value(label) is not None:
            kinds.append("roman")
    return kinds


def _successor(kind: str, label: str) -> str:
    if kind == "letter":
        return _next_letter(label)
    if kind == "roman":
        return _to_roman((_roman_value(label) or 0) + 1)
    if kind == "upper":
        return chr(ord(label) + 1)
    return str(int(label) + 1)


_FIRST = {"letter": "a", "roman": "i", "upper": "A", "digit": "1"}


class _LabelStack:
    """Nested (kind, label) levels under the current section number."""

    def __init__(self) -> None:
        self.section = ""
        self.title = ""
        self.levels: list[tuple[str, str]] = []

    def set_section(self, number: str, title: str) -> None:
        self.section, self.title, self.levels = number, title, []

    def push(self, label: str, after_intro: bool) -> None:
        kinds = _kinds(label)
        if not kinds:
            return
        # A label is either the next sibling of an open level or the first child of a new one;
        # "(i)" after "(h)" is ambiguous, and an introducing colon means a child list starts.
        siblings = [
            i for i, (k, lab) in enumerate(self.levels) if k in kinds and _successor(k, lab) == label
        ]
        open_kinds = {k for k, _ in self.levels}
        first_child = [k for k in kinds if _FIRST[k] == label and k not in open_kinds]
        if first_child and (after_intro or not siblings):
            self.levels.append((first_child[0], label))
        elif siblings:
            i = siblings[-1]
            self.levels[i:] = [(self.levels[i][0], label)]
        else:
            kind = kinds[-1] if "roman" in kinds and len(label) > 1 else kinds[0]
            same = [i for i, (k, _) in enumerate(self.levels) if k == kind]
            if same:
                self.levels[same[0]:] = [(kind, label)]
            else:
                self.levels.append((kind, label))

    @property
    def label(self) -> str:
        return self.section + "".join(f"({lab})" for _, lab in self.levels)


def _units(body: str, offset: int) -> list[tuple[int, int]]:
    """Paragraph spans: runs of non-blank lines, split where a line starts with a label."""
    spans: list[tuple[int, int]] = []
    prev_end = -1
    for m in _NONBLANK_LINE.finditer(body):
        start, end = m.start(), m.end()
        contiguous = prev_end >= 0 and "\n" not in body[prev_end + 1 : start] and start == prev_end + 1
        starts_label = _UNIT_START.match(body, start) is not None
        if spans and not starts_label:
            last_text = body[spans[-1][0] : spans[-1][1]].rstrip()
            # A paragraph cut mid-sentence by the conversion continues on the next block.
            if contiguous or (last_text and last_text[-1].isalnum()):
                spans[-1] = (spans[-1][0], end)
                prev_end = end
                continue
        spans.append((start, end))
        prev_end = end
    return [(s + offset, e + offset) for s, e in spans]


def _strip_title(text: str, pos: int) -> tuple[str, int]:
    """Return a section's heading (e.g. "Purpose") and the position after it, if it has one."""
    if text.startswith("(", pos):
        return "", pos
    m = _TITLE_END.search(text, pos)
    if m is None:
        candidate = text[pos:].strip()
        end = len(text)
    else:
        candidate = text[pos : m.start()].strip()
        end = m.end()
    words = candidate.split()
    if not words or len(words) > _MAX_TITLE_WORDS or re.search(r"\b(?:shall|will|must|is|are)\b", candidate):
        return "", pos
    while end < len(text) and text[end] in " \t":
        end += 1
    return candidate, end


def clauses(text: str) -> list[Clause]:
    """Split the body of an order (header skipped) into labelled clauses."""
    _, body_start = split_header(text)
    stack = _LabelStack()
    out: list[Clause] = []
    after_intro = False
    top_title = ""
    for start, end in _units(text[body_start:], body_start):
        pos = start
        while pos < end and text[pos] in " \t":
            pos += 1
        sec = _SEC.match(text, pos, end)
        sub = _SUBSEC.match(text, pos, end) if sec is None else None
        if sec is not None or sub is not None:
            m = sec if sec is not None else sub
            assert m is not None
            number = m.group(1)
            title, pos = _strip_title(text[:end], m.end())
            if sec is not None or number.split(".")[0] != stack.section.split(".")[0]:
                top_title = title
            stack.set_section(number, top_title)
            after_intro = False
        label = _LABEL.match(text, pos, end)
        if label is not None:
            stack.push(label.group(1), after_intro)
        if stack.section:
            out.append(Clause(stack.label, stack.title, start, end))
        tail = text[start:end].rstrip()
        after_intro = tail.endswith((":", "—", "–")) if tail else after_intro
    return out
