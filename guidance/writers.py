"""Report writers: one table from export format to the function that writes it to a file.

A new report format is one writer module in guidance/ and one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .oscal import poam_json
from .report import Report, report_json
from .report_csv import report_csv
from .report_html import report_html
from .report_pdf import write_pdf

Writer = Callable[[Report, Path], None]


def _text(render: Callable[[Report], str], encoding: str = "utf-8") -> Writer:
    def write(report: Report, path: Path) -> None:
        with open(path, "w", encoding=encoding, newline="") as fh:
            fh.write(render(report))
    return write


WRITERS: dict[str, Writer] = {
    "csv": _text(report_csv, "utf-8-sig"),  # the BOM lets spreadsheet programs read UTF-8
    "json": _text(report_json),
    "html": _text(report_html),
    "pdf": write_pdf,
    "oscal-poam": _text(poam_json),
}
