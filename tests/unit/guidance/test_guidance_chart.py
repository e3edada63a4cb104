"""The timeline chart: the report-date label stays inside the drawing wherever the report date falls on the axis."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date, datetime, timezone

import pytest

from watchstander.guidance.chart import Label, Line, timeline, to_svg
from watchstander.guidance.config import GuidanceConfig
from watchstander.guidance.model import Catalogue
from watchstander.guidance.report import Report, build_report
from watchstander.guidance.report_html import report_html
from watchstander.guidance.tracker import summarize, track

Make = Callable[..., Catalogue]
AT = datetime(2026, 7, 1, 9, tzinfo=timezone.utc)
SVG = "{http://www.w3.org/2000/svg}"
# Helvetica Bold averages about 0.5 em a character for this text; 0.6 em leaves a margin.
EM_PER_CHAR = 0.6


def _report(cat: Catalogue, as_of: date, profile: GuidanceConfig) -> Report:
    rows = track([cat], {}, {}, as_of, profile)
    return build_report(title="Chart test", organization=profile.organization, as_of=as_of, generated_at=AT,
                        generated_by="tests", catalogues=[cat], rows=rows,
                        summary=summarize(rows, as_of, profile.organization))


def _svg_of(page: str) -> ET.Element:
    """The timeline SVG element of an HTML report, parsed."""
    start, end = page.index("<svg"), page.index("</svg>") + len("</svg>")
    return ET.fromstring(page[start:end])


def _extent(anchor: str, x: float, text: str, size: float) -> tuple[float, float]:
    """Estimated left and right edges of a text element."""
    w = len(text) * size * EM_PER_CHAR
    return {"start": (x, x + w), "middle": (x - w / 2, x + w / 2), "end": (x - w, x)}[anchor]


# Order signed 2026-06-02; deadlines 2026-07-02 and 2026-11-29; the axis runs 2026-05-29 to 2026-12-05
# unless the report date lies outside that.
@pytest.mark.parametrize("as_of", [
    date(2026, 5, 20),   # before the order: the left end of the axis
    date(2026, 6, 2),    # the signing date, near the left end
    date(2026, 8, 30),   # the middle
    date(2026, 11, 29),  # the last deadline, near the right end
    date(2027, 1, 15),   # after every deadline: the right end of the axis
])
def test_report_date_label_lies_inside_the_chart(make_catalogue: Make, profile: GuidanceConfig, as_of: date) -> None:
    """The "Report date" label is not cut at either edge of the SVG, and stays next to the dashed line."""
    cat = make_catalogue(("a", "30 days after order"), ("b", "180 days after order"))
    svg = _svg_of(report_html(_report(cat, as_of, profile)))
    width = float(svg.attrib["viewBox"].split()[2])
    [label] = [t for t in svg.iter(f"{SVG}text") if (t.text or "").startswith("Report date")]
    assert label.text == f"Report date {as_of.isoformat()}"
    [marker] = [ln for ln in svg.iter(f"{SVG}line") if ln.get("stroke-dasharray")]
    x, xr = float(label.attrib["x"]), float(marker.attrib["x1"])
    left, right = _extent(label.attrib.get("text-anchor", "start"), x, label.text, float(label.attrib["font-size"]))
    assert 0 <= left and right <= width, (left, right, width)
    assert left <= xr <= right


def test_report_date_label_is_centred_when_it_fits(make_catalogue: Make, profile: GuidanceConfig) -> None:
    """Away from the edges the label stays centred on the report-date line, as before."""
    cat = make_catalogue(("a", "30 days after order"), ("b", "180 days after order"))
    chart = timeline(_report(cat, date(2026, 8, 30), profile))
    [marker] = [s for s in chart.shapes if isinstance(s, Line) and s.dash]
    [label] = [s for s in chart.shapes if isinstance(s, Label) and s.text.startswith("Report date")]
    assert (label.anchor, label.x) == ("middle", marker.x1)
    assert 'text-anchor="middle" font-weight="bold">Report date 2026-08-30<' in to_svg(chart)


def test_report_date_label_fits_a_narrow_label_column(make_catalogue: Make, profile: GuidanceConfig) -> None:
    """With almost no room left of the plot the label is anchored at its start rather than cut at the left edge."""
    cat = make_catalogue(("a", "30 days after order"), ("b", "180 days after order"))
    chart = timeline(_report(cat, date(2026, 5, 20), profile), label_w=20.0)
    [label] = [s for s in chart.shapes if isinstance(s, Label) and s.text.startswith("Report date")]
    left, right = _extent(label.anchor, label.x, label.text, label.size)
    assert 0 <= left and right <= chart.width
