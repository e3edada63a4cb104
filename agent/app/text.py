"""Text from telemetry or a model, shown to a person: what the terminal and the console both do to it."""

from __future__ import annotations

import re
import unicodedata

_NOT_PLAIN = re.compile(r"[^\x20-\x7e]")


def show_invisible(text: str) -> str:
    """Control, format (bidi, zero-width) and separator characters spelled as escapes; the rest as it is.

    An escape sequence, a right-to-left override or a line separator in a log line could otherwise make
    it read, on a terminal or a page, other than it is.
    """
    if not _NOT_PLAIN.search(text):  # the common case: printable ASCII
        return text
    return "".join(ch if ch == " " or unicodedata.category(ch)[0] not in "CZ"
                   else ch.encode("unicode_escape").decode("ascii") for ch in text)
