"""PDF report for leadership, drawn with reportlab: the same content as the HTML report, paginated."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Circle, Drawing, String
from reportlab.graphics.shapes import Line as RlLine
from reportlab.graphics.shapes import Rect as RlRect
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import landscape, letter
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.doctemplate import LayoutError

from .chart import STANDING_COLOURS, Chart, Dot, Label, Line, Rect, timeline
from .errors import ReportError
from .report import Report, ReportRow
from .report_html import operational_rows
from .tracker import STANDING_LABELS, STANDINGS

_VERDICT = {"v-red": "#c62828", "v-amber": "#ef6c00", "v-green": "#2e7d32", "v-grey": "#546e7a"}


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["Normal"], fontName="Helvetica", fontSize=8, leading=10)
    return {
        "title": ParagraphStyle("title", parent=base["Title"], fontSize=16, leading=20, alignment=TA_LEFT,
                                spaceAfter=2),
        "meta": ParagraphStyle("meta", parent=body, textColor=colors.HexColor("#616161"), fontSize=8.5),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontSize=12, leading=15, spaceBefore=10, spaceAfter=4,
                             keepWithNext=1,
                             textColor=colors.HexColor("#263238")),
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=7, leading=8.5, textColor=colors.HexColor("#616161")),
        "cell": ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9),
        "verdict": ParagraphStyle("verdict", parent=body, fontName="Helvetica-Bold", fontSize=12, leading=15,
                                  textColor=colors.white),
    }


def chart_drawing(chart: Chart, width: float, max_height: float | None = None) -> Drawing:
    """The timeline chart as a reportlab Drawing scaled to fit `width` (and `max_height`) points."""
    scale = width / chart.width
    if max_height is not None:
        scale = min(scale, max_height / chart.height)
    d = Drawing(chart.width * scale, chart.height * scale)
    h = chart.height

    def y(v: float) -> float:
        return (h - v) * scale

    for sh in chart.shapes:
        if isinstance(sh, Line):
            ln = RlLine(sh.x1 * scale, y(sh.y1), sh.x2 * scale, y(sh.y2), strokeColor=colors.HexColor(sh.colour),
                        strokeWidth=sh.width * scale)
            if sh.dash:
                ln.strokeDashArray = list(sh.dash)
            d.add(ln)
        elif isinstance(sh, Rect):
            d.add(RlRect(sh.x * scale, y(sh.y + sh.h), sh.w * scale, sh.h * scale, fillColor=colors.HexColor(sh.fill),
                         strokeColor=colors.HexColor(sh.stroke) if sh.stroke else None,
                         strokeWidth=0.5 if sh.stroke else 0))
        elif isinstance(sh, Dot):
            d.add(Circle(sh.cx * scale, y(sh.cy), sh.r * scale, fillColor=colors.HexColor(sh.fill),
                         strokeColor=colors.HexColor(sh.stroke), strokeWidth=0.8))
        elif isinstance(sh, Label):
            anchor = {"start": "start", "middle": "middle", "end": "end"}[sh.anchor]
            d.add(String(sh.x * scale, y(sh.y), sh.text, fontSize=sh.size * scale,
                         fontName="Helvetica-Bold" if sh.bold else "Helvetica",
                         fillColor=colors.HexColor(sh.colour), textAnchor=anchor))
    return d


def _tint(hex_colour: str, strength: float = 0.22) -> colors.Color:
    """A pale version of a colour, for cell backgrounds that text must stay readable on."""
    c = colors.HexColor(hex_colour)
    return colors.Color(1 - (1 - c.red) * strength, 1 - (1 - c.green) * strength, 1 - (1 - c.blue) * strength)


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _obligation_table(rows: Sequence[ReportRow], st: dict[str, ParagraphStyle], width: float) -> Table:
    head = ["Order / sec.", "Obligation and deliverable", "Lead (consulted)", "Due", "Standing", "Owner", "Evidence"]
    data: list[list[Any]] = [[_p(h, st["cell"]) for h in head]]
    styles: list[tuple[Any, ...]] = []
    for i, r in enumerate(rows, start=1):
        due = "awaiting " + r.waiting_on if (r.due is None and r.waiting_on) else (
            r.due.isoformat() if r.due else "no deadline")
        if r.due is not None and r.days_left is not None:
            due += (f"\n{-r.days_left} days overdue" if r.days_left < 0 else
                    "\ndue today" if r.days_left == 0 else f"\nin {r.days_left} days")
        if r.due_flag:
            due += f"\nfalls on {r.due_flag}"
        if r.due_override_reason:
            due += f"\noverride: {r.due_override_reason}"
        lead = "; ".join(r.lead) or "all agencies / not named"
        if r.consulted:
            lead += f"\n({'; '.join(r.consulted)})"
        evidence = "\n".join(f"{e.ref}\nsha256 {e.sha256[:16]}…" if e.sha256 else e.ref for e in r.evidence) or "none"
        text = Paragraph(f"<b>{escape(r.title)}</b><br/>{escape(r.deliverable)}", st["cell"])
        data.append([_p(f"{r.order}\n{r.section}", st["cell"]), text, _p(lead, st["small"]), _p(due, st["cell"]),
                     _p(f"{r.standing_label}\n({r.status_label})", st["cell"]), _p(r.owner or "—", st["cell"]),
                     _p(evidence, st["small"])])
        styles.append(("BACKGROUND", (4, i), (4, i), _tint(STANDING_COLOURS[r.standing])))
    if len(data) == 1:
        data.append([_p("None.", st["small"])] + [""] * 6)
    fractions = (0.08, 0.32, 0.17, 0.11, 0.09, 0.09, 0.14)
    table = Table(data, colWidths=[width * f for f in fractions], repeatRows=1)
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#b0bec5")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eceff1")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        *styles,
    ]))
    return table


def _counts_table(report: Report, st: dict[str, ParagraphStyle]) -> Table:
    own, everything = report.summary.relevant_by_standing, report.summary.by_standing
    data: list[list[Any]] = [["Standing", report.organization, "All"]]
    styles: list[tuple[Any, ...]] = []
    for s in STANDINGS:
        if everything.get(s):
            data.append([STANDING_LABELS[s], str(own.get(s, 0)), str(everything.get(s, 0))])
            styles.append(("TEXTCOLOR", (0, len(data) - 1), (0, len(data) - 1), colors.HexColor(STANDING_COLOURS[s])))
    data.append(["Total", str(report.summary.relevant), str(report.summary.total)])
    t = Table(data, colWidths=[1.6 * inch, 1.6 * inch, 0.7 * inch])
    t.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#b0bec5")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eceff1")),
        ("FONT", (0, 0), (-1, -1), "Helvetica", 8.5), ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8.5),
        ("FONT", (0, 1), (0, -2), "Helvetica-Bold", 8.5), ("FONT", (0, -1), (-1, -1), "Helvetica-Bold", 8.5),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"), *styles,
    ]))
    return t


def write_pdf(report: Report, path: Path) -> None:
    """Write the report as a landscape US Letter PDF."""
    from .report_html import verdict_class

    st = _styles()
    doc = SimpleDocTemplate(str(path), pagesize=landscape(letter), leftMargin=0.5 * inch, rightMargin=0.5 * inch,
                            topMargin=0.5 * inch, bottomMargin=0.55 * inch, title=report.title,
                            author=report.organization, subject=f"Status as of {report.as_of.isoformat()}",
                            creator="watchstander")
    width = doc.width
    mine = [r for r in report.rows if r.relevance != "awareness"]
    others = [r for r in report.rows if r.relevance == "awareness"]
    overdue = [r for r in mine if r.standing == "overdue"]
    verdict = Table([[Paragraph(escape(report.summary.verdict), st["verdict"])]], colWidths=[width])
    verdict.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(_VERDICT[verdict_class(report)])),
                                 ("TOPPADDING", (0, 0), (-1, -1), 6), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
    story: list[Any] = [
        _p(report.title, st["title"]),
        _p(f"{report.organization} · status as of {report.as_of.isoformat()} · generated "
           f"{report.generated_at.strftime('%Y-%m-%d %H:%M UTC')} by {report.generated_by}", st["meta"]),
        Spacer(1, 6), verdict, Spacer(1, 4),
        _p("Counts by standing", st["h2"]), _counts_table(report, st),
        _p(f"Overdue ({len(overdue)})", st["h2"]), _obligation_table(overdue, st, width),
        KeepTogether([_p("Timeline", st["h2"]),
                      _p("Every dated deadline against the report date (dashed line); bars run from the order's date "
                         "to the due date, coloured by standing. Grey labels are for awareness only.", st["small"]),
                      chart_drawing(timeline(report), width, doc.height - 60)]),
        _p(f"{report.organization} obligations ({len(mine)})", st["h2"]), _obligation_table(mine, st, width),
        _p(f"For awareness ({len(others)})", st["h2"]), _obligation_table(others, st, width),
    ]
    op = Table([[k, v] for k, v in operational_rows(report)], colWidths=[3.2 * inch, 2.2 * inch])
    op.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#b0bec5")),
                            ("FONT", (0, 0), (-1, -1), "Helvetica", 8.5),
                            ("FONT", (1, 0), (1, -1), "Helvetica-Bold", 8.5)]))
    story += [KeepTogether([_p("Operational evidence from the agent", st["h2"]), op])]
    story += [_p(n, st["small"]) for n in report.operational.notes]
    story.append(_p("Orders covered and method", st["h2"]))
    for o in report.orders:
        story.append(_p(f"{o.name} — {o.title} ({o.type}, signed {o.signed.isoformat() if o.signed else 'n/a'}). "
                        f"{o.citation}. {o.source_url or ''}", st["body"]))
    story.append(_p("Due dates are counted in calendar days (or months) from the signing date as the texts say; a due "
                    "date on a weekend or US federal holiday is flagged, never moved. Dependent deadlines get a date once "
                    "their anchor is recorded. Every change of status, owner, evidence or due date is recorded in the "
                    "agent's hash-chained audit log.", st["small"]))

    def footer(canvas: Any, _doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.HexColor("#757575"))
        canvas.drawString(0.5 * inch, 0.3 * inch, f"{report.title} — {report.organization} — as of {report.as_of.isoformat()}")
        canvas.drawRightString(landscape(letter)[0] - 0.5 * inch, 0.3 * inch, f"Page {canvas.getPageNumber()}")
        canvas.restoreState()

    try:
        doc.build(story, onFirstPage=footer, onLaterPages=footer)
    except LayoutError as exc:
        raise ReportError(f"cannot lay out the PDF report: {exc}") from exc
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror}") from exc
