"""Best-effort reading of who must act (and whom they consult) and what they must deliver."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ABBREV = re.compile(
    r"(?:\b(?:U\.S\.C|U\.S|Sec|No|Nos|e\.g|i\.e|seq|Inc|Mr|Ms|Dr|St|Jr|Pub|Stat|C\.F\.R|Fed|Reg|al|Gen|Gov|Co|Corp|v)"
    r"|\b[A-Z])\.$"
)
_SENTENCE_END = re.compile(r"[.!?][”\"’)]?\s+(?=[A-Z“\"(])")
_MODAL = re.compile(
    r"\s+(?:shall|will|must|should|is\s+(?:hereby\s+)?directed\s+to|are\s+(?:hereby\s+)?directed\s+to"
    r"|is\s+encouraged\s+to|are\s+encouraged\s+to|may)\b",
)
_DIRECT = re.compile(r"\b(?:I\s+)?(?:hereby\s+)?direct(?:s)?\s+(?P<who>.+?),?\s+(?:to\b|within\b)")
_NOT_SUBJECT = re.compile(
    r"^(?:to|within|no|not|in|through|acting|consistent|as|pursuant|including|for|by|after|following|under|with"
    r"|upon|once|until|where|when|if|because|based|subject|beginning|starting|on|at|from|and\s+in|and\s+through"
    r"|and\s+acting|or|so|that|this|these|such|thereafter|subsequently|further|additionally|also|rather)\b",
    re.IGNORECASE,
)
_CONSULT = re.compile(r"^(?:and\s+)?in\s+(?:consultation|coordination|collaboration|partnership)\s+with\s+", re.I)
_THROUGH = re.compile(r"\s*,?\s+(?:acting\s+)?through\s+.*$", re.I)
_LABEL = re.compile(r"^\s*(?:(?:Section|Sec\.)\s*\d+[A-Za-z]?\.\s*(?:[^.]{0,120}?\.\s+)?)?(?:\([A-Za-z0-9]{1,7}\)\s*)*")
_LEAD_START = re.compile(
    r"^(?:and\s+)?(?:the\b|each\b|every\b|all\b|any\b|such\b|agencies\b|heads\b|relevant\b|[A-Z])"
)
_MAX_SUBJECT = 400
_MAX_DELIVERABLE = 160


@dataclass(frozen=True)
class Roles:
    """The lead official(s), those consulted, and the deliverable of one sentence."""

    responsible: str | None
    consulted: tuple[str, ...]
    deliverable: str | None


def sentence_span(text: str, pos: int) -> tuple[int, int]:
    """The [start, end) of the sentence of `text` that contains position `pos`."""
    start = 0
    for m in _SENTENCE_END.finditer(text):
        if _ABBREV.search(text, max(0, m.start() - 8), m.start() + 1):
            continue
        if m.end() <= pos:
            start = m.end()
        elif m.start() >= pos:
            return start, m.start() + 1
    return start, len(text)


def _split_commas(text: str) -> list[str]:
    parts = re.split(r"\s*[,;]\s*", text)
    return [p.strip() for p in parts if p.strip()]


def _names(text: str) -> list[str]:
    out = []
    for part in re.split(r"\s*,\s*|\s*;\s*|\s+and\s+(?=the\b|other\b|relevant\b|appropriate\b)", text):
        part = re.sub(r"^(?:and|or)\s+", "", part.strip())
        part = _THROUGH.sub("", part)
        if part and not _NOT_SUBJECT.match(part):
            out.append(part)
    return out


def _subject(prefix: str) -> tuple[str | None, tuple[str, ...]]:
    leads: list[str] = []
    consulted: list[str] = []
    mode = "seek"
    for chunk in _split_commas(prefix):
        consult = _CONSULT.match(chunk)
        if consult:
            consulted.extend(_names(chunk[consult.end():]))
            mode = "consult"
            continue
        if mode == "consult" and re.match(r"^(?:and\s+)?(?:the|other|relevant|appropriate)\b", chunk, re.I):
            consulted.extend(_names(chunk))
            continue
        if _NOT_SUBJECT.match(chunk) or re.match(r"^(?:acting\s+)?through\b", chunk, re.I):
            if mode == "lead":
                mode = "after"
            continue
        if not _LEAD_START.match(chunk):
            continue
        if mode in ("seek", "lead") or (mode == "after" and re.match(r"^(?:and\s+)?the\b", chunk, re.I)):
            leads.append(re.sub(r"^and\s+", "", chunk))
            mode = "lead"
    responsible = ", ".join(leads)[:_MAX_SUBJECT] or None
    return responsible, tuple(c[:_MAX_SUBJECT] for c in consulted)


def _deliverable(rest: str) -> str | None:
    rest = re.sub(r"^\s*,\s*(?:[^,]{0,160},\s*)+?(?=[a-z])", " ", rest) if rest.lstrip().startswith(",") else rest
    rest = rest.strip(" ,")
    m = re.search(r"[;:]|\.(?:\s|$)", rest)
    text = (rest[: m.start()] if m else rest).strip()
    if not text:
        return None
    if len(text) > _MAX_DELIVERABLE:
        cut = text.rfind(" ", 0, _MAX_DELIVERABLE - 1)
        text = text[: cut if cut > 40 else _MAX_DELIVERABLE - 1] + "…"
    return text


def read_roles(sentence: str, phrase_start: int, phrase_end: int) -> Roles:
    """Guess the subject and main verb phrase of a sentence whose deadline phrase sits at [start, end)."""
    body = sentence[:phrase_start] + " " * (phrase_end - phrase_start) + sentence[phrase_end:]
    label = _LABEL.match(body)
    offset = label.end() if label else 0
    direct = _DIRECT.search(body, offset)
    modal = _MODAL.search(body, offset)
    if direct is not None and (modal is None or direct.start() < modal.start()):
        who = re.sub(r"\s+", " ", direct.group("who")).strip(" ,")
        responsible, consulted = _subject(who)
        rest = body[direct.end():]
        if direct.group(0).rstrip().endswith("within"):
            rest = re.sub(r"^[^,]*,", "", rest, count=1)
        return Roles(responsible, consulted, _deliverable(rest))
    if modal is None:
        return Roles(None, (), None)
    prefix = re.sub(r"\s+", " ", body[offset: modal.start()])
    responsible, consulted = _subject(prefix)
    after = body[modal.end():]
    if re.match(r"\s+(?:be|have\s+been)\b", after):
        # A passive clause ("will be issued within 90 days") names no actor.
        responsible = None
    return Roles(responsible, consulted, _deliverable(re.sub(r"\s+", " ", after)))
