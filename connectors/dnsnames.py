"""Plain lists of DNS query names (one per line, optionally `label,qname` CSV or tshark field output)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

from .errors import open_source
from .events import DNS, Event
from .ids import bounded_lines
from .skips import SkipCounter

log = logging.getLogger(__name__)

MAX_LINE = 4096  # a name is at most 1024 characters; a CSV label and quotes fit in the rest

# tshark prints non-printable label bytes as \ooo octal escapes; keep them as-is.
# Each alternative starts differently (a backslash takes exactly three octal digits or one other
# character), and the repetition is possessive: hostile lines cannot make the match backtrack.
_NAME = re.compile(r"^(?:[A-Za-z0-9_-]|\\(?:[0-7]{3}|[^0-7]))(?:[A-Za-z0-9_.-]|\\(?:[0-7]{3}|[^0-7]))*+$")


def looks_like_name(text: str) -> bool:
    """True when a line is a bare DNS name with at least two labels."""
    return "." in text.strip(".") and not text.replace(".", "").isdigit() and bool(_NAME.match(text)) \
        and len(text) <= 1024


def read_dns_names(path: str | Path, source: str | None = None, skips: SkipCounter | None = None,
                   time: float = 0.0) -> Iterator[Event]:
    """Yield one DNS query Event per name; the client is unknown in this format."""
    path = Path(path)
    name = source or f"dnsnames:{path.name}"
    skips = skips or SkipCounter(log, name)
    fh = open_source(path)
    with fh:
        first = True
        for n, raw in enumerate(bounded_lines(fh, MAX_LINE), 1):
            if len(raw) > MAX_LINE:
                skips.skip("overlong line", f"line {n}")
                continue
            line = raw.decode("utf-8", "backslashreplace").strip()
            if not line:
                continue
            if line.startswith("#"):
                skips.ignore("comment")
                continue
            if "," in line:
                field = line.rsplit(",", 1)[1].strip().strip('"')
                if first and not looks_like_name(field):
                    first = False
                    skips.ignore("CSV header")
                    continue
                line = field
            first = False
            if not looks_like_name(line):
                skips.skip("not a DNS name", f"line {n}: {line[:80]}")
                continue
            yield Event(time, name, DNS, attrs={"qname": line.rstrip(".")[:1024], "qtype": 0, "response": False},
                        ref=f"{name}:{n}")
