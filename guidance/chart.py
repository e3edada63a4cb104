"""The deadline timeline as drawing primitives, rendered to SVG (HTML report) or reportlab (PDF report).

Coordinates are in points with the origin at the top left, y growing downwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape

from .report import Report, ReportRow

STANDING_COLOURS: dict[str, str] = {
    "overdue": "#c62828", "due_soon": "#ef6c00", "open": "#1565c0", "awaiting_anchor": "#78909c",
    "no_deadline": "#b0bec5", "submitted": "#7b1fa2", "complete": "#2e7d32", "waived": "#616161",
    "not_applicable": "#9e9e9e",
}


@dataclass(frozen=True)
class Line:
    """A straight line."""

    x1: float
    y1: float
    x2: float
    y2: float
    colour: str = "#000000"
    width: float = 1.0
    dash: tuple[float, ...] = ()


@dataclass(frozen=True)
class Rect:
    """A filled rectangle."""

    x: float
    y: float
    w: float
    h: float
    fill: str
    stroke: str | None = None


@dataclass(frozen=True)
class Dot:
    """A filled circle."""

    cx: float
    cy: float
    r: float
    fill: str
    stroke: str = "#ffffff"


@dataclass(frozen=True)
class Label:
    """Text; `anchor` is start, middle or end; y is the baseline."""

    x: float
    y: float
    text: str
    size: float = 8.0
    colour: str = "#212121"
    anchor: str = "start"
    bold: bool = False


Shape = Line | Rect | Dot | Label


@dataclass
class Chart:
    """A drawing: its size and shapes."""

    width: float
    height: float
    shapes: list[Shape] = field(default_factory=list)


def _month_starts(first: date, last: date) -> list[date]:
    out = []
    d = date(first.year, first.month, 1)
    while d <= last:
        if d >= first:
            out.append(d)
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return out


def _text_width(text: str, size: float) -> float:
    """A generous estimate of a text's width: Helvetica (bold) averages about 0.5 em a character."""
    return len(text) * size * 0.6


def _edge_label(x: float, y: float, text: str, width: float, size: float, bold: bool = False,
                margin: float = 2.0) -> Label:
    """A label centred on x, anchored at its end (or start) instead when centring would cut it at the right
    (or left) edge of a drawing `width` wide."""
    half = _text_width(text, size) / 2
    anchor = "end" if x + half > width - margin else "start" if x - half < margin else "middle"
    return Label(x, y, text, size=size, anchor=anchor, bold=bold)


def timeline(report: Report, width: float = 760.0, row_h: float = 15.0, label_w: float = 200.0) -> Chart:
    """One row per dated obligation: a bar from the order's date to the due date, a dot coloured by standing."""
    signed = {o.id: o.signed for o in report.orders}
    dated: list[ReportRow] = [r for r in report.rows if r.due is not None]
    dated.sort(key=lambda r: (r.due or date.max, r.order, r.section))
    top, bottom_pad, right_pad = 34.0, 44.0, 16.0
    height = top + max(len(dated), 1) * row_h + bottom_pad
    chart = Chart(width, height)
    s = chart.shapes
    starts = [signed.get(r.catalogue_id) or r.due for r in dated]
    lo = min([d for d in starts if d] + [report.as_of]) - timedelta(days=4)
    hi = max([r.due for r in dated if r.due] + [report.as_of]) + timedelta(days=6)
    span = max((hi - lo).days, 1)
    plot_w = width - label_w - right_pad

    def x_of(d: date) -> float:
        return label_w + (d - lo).days / span * plot_w

    plot_bottom = top + max(len(dated), 1) * row_h
    s.append(Rect(label_w, top, plot_w, plot_bottom - top, fill="#fafafa", stroke="#e0e0e0"))
    months = _month_starts(lo, hi)
    step = max(1, len(months) // 10)
    for m in months[::step]:
        x = x_of(m)
        s.append(Line(x, top, x, plot_bottom, colour="#e0e0e0", width=0.6))
        s.append(Label(x, top - 6, m.strftime("%b %Y"), size=7, colour="#616161", anchor="middle"))
    for i, (r, start) in enumerate(zip(dated, starts)):
        y = top + i * row_h + row_h / 2
        if i % 2:
            s.append(Rect(0, y - row_h / 2, label_w - 4, row_h, fill="#f5f5f5"))
        colour = STANDING_COLOURS.get(r.standing, "#000000")
        text = f"{r.order} {r.section}  {r.title}"
        if len(text) > 42:
            text = text[:41] + "…"
        s.append(Label(4, y + 3, text, size=7, colour="#212121" if r.relevance != "awareness" else "#757575"))
        if start is not None and r.due is not None:
            s.append(Line(x_of(min(start, r.due)), y, x_of(r.due), y, colour=colour, width=3.0))
        if r.due is not None:
            s.append(Dot(x_of(r.due), y, 4.2, fill=colour))
            s.append(Label(x_of(r.due) + 7, y + 3, r.due.strftime("%d %b"), size=6.5, colour="#424242"))
    xr = x_of(report.as_of)
    s.append(Line(xr, top - 2, xr, plot_bottom + 2, colour="#212121", width=1.2, dash=(3, 2)))
    s.append(_edge_label(xr, top - 16, f"Report date {report.as_of.isoformat()}", width, size=7.5, bold=True))
    if not dated:
        s.append(Label(label_w + plot_w / 2, top + row_h / 2 + 3, "No dated obligations", size=8,
                       colour="#757575", anchor="middle"))
    ly = plot_bottom + 24
    lx = label_w
    for standing in ("overdue", "due_soon", "open", "submitted", "complete", "waived", "not_applicable"):
        s.append(Dot(lx + 4, ly - 3, 4, fill=STANDING_COLOURS[standing]))
        name = standing.replace("_", " ").capitalize()
        s.append(Label(lx + 11, ly, name, size=7))
        lx += 16 + 4.6 * len(name) + 14
    return chart


def to_svg(chart: Chart, title: str = "Deadline timeline") -> str:
    """Render a chart as a standalone inline SVG element."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {chart.width:.0f} {chart.height:.0f}" '
           f'width="100%" role="img" aria-label="{escape(title)}" font-family="Helvetica, Arial, sans-serif">',
           f"<title>{escape(title)}</title>"]
    for sh in chart.shapes:
        if isinstance(sh, Line):
            dash = f' stroke-dasharray="{" ".join(str(d) for d in sh.dash)}"' if sh.dash else ""
            out.append(f'<line x1="{sh.x1:.1f}" y1="{sh.y1:.1f}" x2="{sh.x2:.1f}" y2="{sh.y2:.1f}" '
                       f'stroke="{sh.colour}" stroke-width="{sh.width}"{dash}/>')
        elif isinstance(sh, Rect):
            stroke = f' stroke="{sh.stroke}"' if sh.stroke else ""
            out.append(f'<rect x="{sh.x:.1f}" y="{sh.y:.1f}" width="{sh.w:.1f}" height="{sh.h:.1f}" '
                       f'fill="{sh.fill}"{stroke}/>')
        elif isinstance(sh, Dot):
            out.append(f'<circle cx="{sh.cx:.1f}" cy="{sh.cy:.1f}" r="{sh.r}" fill="{sh.fill}" '
                       f'stroke="{sh.stroke}" stroke-width="1"/>')
        else:
            weight = ' font-weight="bold"' if sh.bold else ""
            out.append(f'<text x="{sh.x:.1f}" y="{sh.y:.1f}" font-size="{sh.size}" fill="{sh.colour}" '
                       f'text-anchor="{sh.anchor}"{weight}>{escape(sh.text)}</text>')
    out.append("</svg>")
    return "\n".join(out)
