"""HTML report for leadership: verdict, counts, timeline, the obligations with owners and evidence, operational evidence."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from .chart import STANDING_COLOURS, timeline, to_svg
from .report import Report, ReportRow, format_duration
from .tracker import STANDING_LABELS, STANDINGS

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;color:#212121;margin:24px auto;max-width:1100px;font-size:13px;line-height:1.4}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:2px solid #37474f;padding-bottom:3px}
.meta{color:#616161;font-size:12px}
.verdict{font-size:16px;font-weight:bold;padding:10px 14px;border-radius:4px;margin:16px 0;color:#fff}
.v-red{background:#c62828}.v-amber{background:#ef6c00}.v-green{background:#2e7d32}.v-grey{background:#546e7a}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border:1px solid #cfd8dc;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#eceff1;font-size:12px}td{font-size:12px}
.pill{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:11px;white-space:nowrap}
.flag{color:#b71c1c;font-size:11px}.small{font-size:11px;color:#616161}.mono{font-family:monospace;font-size:11px;word-break:break-all}
.counts td.n{text-align:right;width:70px;font-weight:bold}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}tr{page-break-inside:avoid}}
"""


def verdict_class(report: Report) -> str:
    """The colour class of the verdict banner."""
    own = report.summary.relevant_by_standing
    if own.get("overdue"):
        return "v-red"
    if own.get("due_soon"):
        return "v-amber"
    return "v-green" if report.summary.relevant else "v-grey"


def _pill(row: ReportRow) -> str:
    colour = STANDING_COLOURS.get(row.standing, "#000")
    return f'<span class="pill" style="background:{colour}">{escape(row.standing_label)}</span>'


def _due(row: ReportRow) -> str:
    if row.due is None:
        return f'<span class="small">{escape("awaiting " + row.waiting_on if row.waiting_on else "no deadline")}</span>'
    out = escape(row.due.isoformat())
    if row.days_left is not None:
        out += f'<br><span class="small">{_days(row.days_left)}</span>'
    if row.due_flag:
        out += f'<br><span class="flag">falls on {escape(row.due_flag)}</span>'
    if row.due_override_reason:
        out += f'<br><span class="small">override: {escape(row.due_override_reason)}</span>'
    return out


def _days(n: int) -> str:
    if n < 0:
        return f"{-n} day{'s' if n != -1 else ''} overdue" if n else ""
    return "due today" if n == 0 else f"in {n} day{'s' if n != 1 else ''}"


def _evidence(row: ReportRow) -> str:
    if not row.evidence:
        return '<span class="small">none recorded</span>'
    items = []
    for e in row.evidence:
        ref = escape(e.ref)
        link = f'<a href="{ref}">{ref}</a>' if e.kind == "url" else ref
        sha = f'<br><span class="mono">sha256 {escape(e.sha256)}</span>' if e.sha256 else ""
        items.append(f'<div class="mono">{link}{sha}</div>')
    return "".join(items)


def _table(rows: Iterable[ReportRow]) -> str:
    head = ("<table><thead><tr><th>Order / sec.</th><th>Obligation and deliverable</th><th>Lead (consulted)</th>"
            "<th>Due</th><th>Standing</th><th>Owner</th><th>Evidence</th></tr></thead><tbody>")
    body = []
    for r in rows:
        consulted = f'<br><span class="small">({escape("; ".join(r.consulted))})</span>' if r.consulted else ""
        lead = escape("; ".join(r.lead)) or '<span class="small">all agencies / not named</span>'
        notes = "".join(f'<br><span class="small">{escape(n)}</span>' for n in r.notes[-2:])
        body.append(
            f"<tr><td><b>{escape(r.order)}</b><br>{escape(r.section)}<br><span class='small'>{escape(r.id)}</span></td>"
            f"<td><b>{escape(r.title)}</b><br>{escape(r.deliverable)}<br><span class='small'>“{escape(r.clause)} …”</span>{notes}</td>"
            f"<td>{lead}{consulted}</td><td>{_due(r)}</td>"
            f"<td>{_pill(r)}<br><span class='small'>{escape(r.status_label)}</span></td>"
            f"<td>{escape(r.owner or '—')}</td><td>{_evidence(r)}</td></tr>")
    if not body:
        body.append('<tr><td colspan="7" class="small">None.</td></tr>')
    return head + "".join(body) + "</tbody></table>"


def _counts(report: Report) -> str:
    own, everything = report.summary.relevant_by_standing, report.summary.by_standing
    rows = []
    for s in STANDINGS:
        if not everything.get(s):
            continue
        colour = STANDING_COLOURS[s]
        rows.append(f'<tr><td><span class="pill" style="background:{colour}">{escape(STANDING_LABELS[s])}</span></td>'
                    f'<td class="n">{own.get(s, 0)}</td><td class="n">{everything.get(s, 0)}</td></tr>')
    return (f'<table class="counts" style="width:auto"><thead><tr><th>Standing</th>'
            f'<th>{escape(report.organization)}</th><th>All</th></tr></thead><tbody>{"".join(rows)}'
            f'<tr><td><b>Total</b></td><td class="n">{report.summary.relevant}</td>'
            f'<td class="n">{report.summary.total}</td></tr></tbody></table>')


def operational_rows(report: Report) -> list[tuple[str, str]]:
    """The operational-evidence figures as (label, value) pairs, shared by the HTML and PDF reports."""
    op = report.operational
    return [
        ("Incidents triaged", str(op.incidents_triaged)),
        ("Verdicts refined by the AI model", str(op.verdicts_model)),
        ("Verdicts from the baseline analyst", str(op.verdicts_baseline)),
        ("AI model fallbacks (baseline verdict stood)", str(op.model_fallbacks)),
        ("Suggested actions approved by operators", str(op.suggestions_approved)),
        ("Suggested actions rejected by operators", str(op.suggestions_rejected)),
        ("Approved playbooks run", str(op.playbooks_run)),
        ("Median time from detection to decision",
         format_duration(op.median_detection_to_decision_s)
         + (f" (over {op.decisions_timed} decisions)" if op.decisions_timed else "")),
    ]


def report_html(report: Report) -> str:
    """The whole report as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    mine = [r for r in report.rows if r.relevance != "awareness"]
    others = [r for r in report.rows if r.relevance == "awareness"]
    overdue = [r for r in mine if r.standing == "overdue"]
    orders = "".join(
        f"<li><b>{escape(o.name)}</b> — {escape(o.title)} ({escape(o.type)}, signed "
        f"{escape(o.signed.isoformat() if o.signed else 'n/a')}). {escape(o.citation)}"
        + (f' <a href="{escape(o.source_url)}">source</a>' if o.source_url else "") + "</li>"
        for o in report.orders)
    op = "".join(f"<tr><td>{escape(k)}</td><td class='n'>{escape(v)}</td></tr>" for k, v in operational_rows(report))
    op_notes = "".join(f"<li>{escape(n)}</li>" for n in report.operational.notes)
    chart = to_svg(timeline(report), f"Deadlines against the report date {report.as_of.isoformat()}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(report.title)}</title>
<meta name="generator" content="watchstander"><style>{_CSS}</style></head><body>
<h1>{escape(report.title)}</h1>
<div class="meta">{escape(report.organization)} · status as of <b>{report.as_of.isoformat()}</b> ·
generated {escape(report.generated_at.strftime('%Y-%m-%d %H:%M UTC'))} by {escape(report.generated_by)}</div>
<div class="verdict {verdict_class(report)}" id="verdict">{escape(report.summary.verdict)}</div>
<h2>Counts by standing</h2>{_counts(report)}
<h2>Overdue ({len(overdue)})</h2>{_table(overdue)}
<h2>Timeline</h2><p class="small">Every dated deadline against the report date (dashed line); bars run from the order's
date to the due date, coloured by standing. Grey labels are for awareness only.</p>{chart}
<h2>{escape(report.organization)} obligations ({len(mine)})</h2>
<p class="small">Obligations where {escape(report.organization)} leads, is consulted, or which bind every agency.</p>{_table(mine)}
<h2>For awareness ({len(others)})</h2>{_table(others)}
<h2>Operational evidence from the agent</h2>
<table class="counts" style="width:auto"><tbody>{op}</tbody></table>{f'<ul class="small">{op_notes}</ul>' if op_notes else ''}
<h2>Orders covered and method</h2><ul>{orders}</ul>
<p class="small">Due dates are counted in calendar days (or months) from the signing date as the texts say;
a due date on a weekend or US federal holiday is flagged, never moved. Dependent deadlines get a date once their
anchor is recorded. Every change of status, owner, evidence or due date is recorded in the agent's hash-chained audit log.</p>
</body></html>
"""
