"""CSV export: one row per obligation, UTF-8 with a byte-order mark so spreadsheets pick the encoding."""

from __future__ import annotations

import csv
import io

from .report import Report

COLUMNS: tuple[str, ...] = (
    "id", "order", "section", "title", "relevance", "lead", "consulted", "deliverable", "due", "due_flag",
    "days_left", "standing", "status", "owner", "completed_on", "rule", "basis", "waiting_on",
    "due_override_reason", "evidence", "notes", "clause",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    # A leading = + - @ makes spreadsheets evaluate the cell; quote it so text stays text.
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def report_csv(report: Report) -> str:
    """The report rows as CSV text (CRLF line ends, every field quoted where needed)."""
    buf = io.StringIO()
    writer = csv.writer(buf, dialect="excel")
    writer.writerow(COLUMNS)
    for r in report.rows:
        evidence = "; ".join(f"{e.ref} (sha256 {e.sha256})" if e.sha256 else e.ref for e in r.evidence)
        values = {
            **r.model_dump(mode="json"),
            "lead": "; ".join(r.lead), "consulted": "; ".join(r.consulted),
            "standing": r.standing_label, "status": r.status_label,
            "evidence": evidence, "notes": " | ".join(r.notes),
        }
        writer.writerow([_cell(values[c]) for c in COLUMNS])
    return buf.getvalue()


def write_csv(report: Report, path: str) -> None:
    """Write the CSV with a BOM (utf-8-sig) so Excel reads UTF-8 correctly."""
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        fh.write(report_csv(report))
