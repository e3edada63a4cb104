"""Every export format from one report: CSV parsed back, JSON and OSCAL POA&M validated against their schemas,
HTML parsed, PDF text extracted."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import regex
from jsonschema import validators

from watchstander.guidance.config import GuidanceConfig
from watchstander.guidance.model import Catalogue
from watchstander.guidance.oscal import poam_document
from watchstander.guidance.report import (
    OperationalEvidence,
    Report,
    build_report,
    format_duration,
    report_json,
    report_json_schema,
)
from watchstander.guidance.report_csv import COLUMNS, report_csv
from watchstander.guidance.report_html import report_html
from watchstander.guidance.tracker import Evidence, Note, TrackingState, summarize, track

SCHEMA = Path(__file__).parent / "data" / "oscal_poam_schema.json"
SCHEMA_SHA256 = "bfeabca0c2405fd35502933213301d6645012900abb96b228903dd102523e638"
AS_OF = date(2026, 7, 20)
AT = datetime(2026, 7, 1, 9, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def report(shipped: list[Catalogue]) -> Report:
    states = {
        "eo14409-2b": TrackingState(
            obligation_id="eo14409-2b", status="complete", owner="DOW CIO", completed_on=date(2026, 6, 30),
            evidence=(Evidence(kind="file", ref="/srv/evidence/memo.pdf", sha256="a" * 64, size=10, added_at=AT,
                               added_by="uid:1000:cio"),
                      Evidence(kind="url", ref="https://intranet.example.mil/memo?id=1&v=2", added_at=AT,
                               added_by="uid:1000:cio")),
            notes=(Note(at=AT, by="uid:1000:cio", text='Signed; "=SUM(A1)" & <b>not</b> markup'),)),
        "nspm12-6c-i": TrackingState(obligation_id="nspm12-6c-i", status="complete", completed_on=date(2026, 7, 10)),
        "eo14409-3": TrackingState(obligation_id="eo14409-3", status="in_progress", owner="-NSA liaison",
                                   due_override=date(2026, 7, 31), override_reason="Saturday; due Friday"),
        "eo14409-2a": TrackingState(obligation_id="eo14409-2a", status="submitted"),
    }
    profile = GuidanceConfig()
    rows = track(shipped, states, {"nspm11-waiver-granted": date(2026, 7, 1)}, AS_OF, profile)
    op = OperationalEvidence(incidents_triaged=12, verdicts_model=9, verdicts_baseline=3, model_fallbacks=2,
                             suggestions_approved=5, suggestions_rejected=1, playbooks_run=4,
                             median_detection_to_decision_s=1830.0, decisions_timed=6)
    return build_report(title="Test report", organization=profile.organization, as_of=AS_OF, generated_at=AT,
                        generated_by="tests", catalogues=shipped, rows=rows,
                        summary=summarize(rows, AS_OF, profile.organization), operational=op)


def test_csv_parses_back(report: Report) -> None:
    text = report_csv(report)
    assert "\r\n" in text
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert tuple(parsed[0].keys()) == COLUMNS
    assert len(parsed) == len(report.rows)
    by_id = {r["id"]: r for r in parsed}
    row = by_id["eo14409-2b"]
    assert row["status"] == "Complete" and row["owner"] == "DOW CIO" and row["due"] == "2026-07-02"
    assert "sha256 " + "a" * 64 in row["evidence"] and "https://intranet.example.mil/memo?id=1&v=2" in row["evidence"]
    # Text that a spreadsheet would run as a formula is quoted.
    assert by_id["eo14409-3"]["owner"] == "'-NSA liaison"
    assert by_id["eo14409-2a"]["days_left"] == "-18"
    assert "'=SUM" not in row["notes"] or row["notes"].startswith("2026")


def test_json_validates_against_its_schema(report: Report) -> None:
    data = json.loads(report_json(report))
    jsonschema.validate(data, report_json_schema(), cls=jsonschema.Draft202012Validator)
    assert data["schema_version"] == 1 and data["as_of"] == "2026-07-20"
    assert data["operational"]["incidents_triaged"] == 12
    assert Report.model_validate(data) == report


def _oscal_validator() -> Any:
    # NIST's patterns use \p{L} and \p{N}, which Python's re lacks; the regex module has them.
    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
        if validator.is_type(instance, "string") and not regex.search(patrn, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    formats = jsonschema.FormatChecker()
    formats.checks("regex", raises=regex.error)(lambda text: regex.compile(text) is not None)
    jsonschema.Draft7Validator(jsonschema.Draft7Validator.META_SCHEMA, format_checker=formats).validate(schema)
    cls = validators.extend(jsonschema.Draft7Validator, {"pattern": pattern})
    return cls(schema)


def test_schema_file_is_the_vendored_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_oscal_poam_validates(report: Report) -> None:
    doc = poam_document(report)
    errors = sorted(_oscal_validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    poam = doc["plan-of-action-and-milestones"]
    open_rows = [r for r in report.rows if r.standing not in ("complete", "waived", "not_applicable")]
    assert len(poam["poam-items"]) == len(open_rows)
    titles = {i["title"] for i in poam["poam-items"]}
    assert "EO 14409 Sec. 2(b): Secretary of War prioritizes cyber defense of Department of War systems" not in titles
    risks = {r["uuid"]: r for r in poam["risks"]}
    item = next(i for i in poam["poam-items"] if i["title"].startswith("EO 14409 Sec. 3:"))
    risk = risks[item["related-risks"][0]["risk-uuid"]]
    assert risk["deadline"] == "2026-07-31T23:59:59Z"
    assert risk["remediations"][0]["tasks"][0]["timing"]["on-date"]["date"] == "2026-07-31T23:59:59Z"
    # A completed anchor gives its dependant's due date as a later milestone.
    item = next(i for i in poam["poam-items"] if i["title"].startswith("NSPM-12 Sec. 6(c)(ii)"))
    assert risks[item["related-risks"][0]["risk-uuid"]]["deadline"] == "2026-09-08T23:59:59Z"
    waiting = next(i for i in poam["poam-items"] if i["title"].startswith("NSPM-12 Sec. 6(b)(iii):"))
    tasks = risks[waiting["related-risks"][0]["risk-uuid"]]["remediations"][0]["tasks"]
    assert [t["title"].split(":")[0] for t in tasks] == ["NSPM-12 Sec. 6(b)(iii) deadline", "Then"]
    # Stable ids: the same report twice gives the same document.
    assert poam_document(report) == doc


def test_oscal_with_nothing_open_still_validates(report: Report) -> None:
    closed = report.model_copy(update={"rows": tuple(r for r in report.rows if r.standing == "complete")})
    doc = poam_document(closed)
    assert not list(_oscal_validator().iter_errors(doc))
    assert doc["plan-of-action-and-milestones"]["poam-items"][0]["title"] == "No open obligations"


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids |= {v for k, v in attrs if k == "id" and v}

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_has_every_section(report: Report) -> None:
    page = report_html(report)
    parser = _Collect()
    parser.feed(page)
    text = " ".join(parser.text)
    assert "verdict" in parser.ids and "svg" in parser.tags and "script" not in parser.tags
    for heading in ("Counts by standing", "Overdue", "Timeline", "Department of War obligations", "For awareness",
                    "Operational evidence from the agent", "Orders covered and method"):
        assert heading in text
    assert report.summary.verdict in text
    assert "<b>not</b>" not in page and "&lt;b&gt;not&lt;/b&gt;" in page
    assert "30 min 30 s" in text and "(over 6 decisions)" in text
    assert "a" * 64 in text
    assert text.index("Overdue (") < text.index("Timeline")


def test_pdf_text(report: Report, tmp_path: Path) -> None:
    from pypdf import PdfReader

    from watchstander.guidance.report_pdf import write_pdf

    out = tmp_path / "r.pdf"
    write_pdf(report, out)
    reader = PdfReader(str(out))
    assert len(reader.pages) >= 3
    text = "\n".join(p.extract_text() or "" for p in reader.pages)
    flat = " ".join(text.split())
    assert "ACTION NEEDED" in flat and "Operational evidence from the agent" in flat
    assert "Report date 2026-07-20" in flat
    assert reader.metadata is not None and reader.metadata.title == "Test report"


@pytest.mark.parametrize(("seconds", "text"), [(None, "n/a"), (12.4, "12 s"), (600, "10 min"), (3720, "1 h 2 min"),
                                               (90000, "1 d 1 h")])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_the_oscal_validator_rejects_broken_documents(report: Report) -> None:
    doc = poam_document(report)
    poam = doc["plan-of-action-and-milestones"]
    del poam["metadata"]["title"]
    poam["poam-items"][0]["uuid"] = "not-a-uuid"
    poam["metadata"]["parties"][0]["type"] = "bad type with spaces"
    messages = [e.message for e in _oscal_validator().iter_errors(doc)]
    assert any("'title' is a required property" in m for m in messages)
    assert any("not-a-uuid" in m for m in messages)
