"""A version's report page, `report.html`: its data (`report_data`) rendered as one offline HTML page."""

from __future__ import annotations

import html
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.assembled.generations import Part
from pipeline.reported.report_data import OTHER, Category, ReportData, report_data
from pipeline.reported.series import TimeBins
from schemas.tables import CHANGE_KINDS

# One colour per top category (Tableau 10), then grey for the rest; the ranked and reject bars
# have colours of their own, so that a screenshot tells the charts apart.
CATEGORY_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#86bcb6")  # fmt: skip
OTHER_COLOUR = "#bab0ac"
RANK_COLOUR = "#3d6b8c"
REJECT_COLOUR = "#c8553d"


def _series_caption(categories: Sequence[Category]) -> str:
    """What the time chart's series are, in words that fit their number."""
    named = sum(1 for c in categories if c.code != OTHER)
    if not named:
        return "By publication date; no paper to show."
    if len(categories) > named:
        return f"By publication date; the {named} largest categories, then all others together."
    return f"By publication date; one series per category ({named})."


def _time_caption(time: TimeBins | None) -> str:
    """How the time axis is binned, and why."""
    if time is None:
        return ""
    labels = time.labels
    if time.windowed:
        share = time.before / time.total if time.total else 0.0
        return (
            f"One bar per {time.unit} for the last {len(labels) - 1} {time.unit}s ({labels[1]} to {labels[-1]}); "
            f"the first bar holds the {_number(time.before)} papers ({_percent(share)}) published before {labels[1]}."
        )
    if time.unit == "month":
        return f"One bar per month, {labels[0]} to {labels[-1]}: every month of the data."
    return (
        f"One bar per {time.unit}, {labels[0]} to {labels[-1]}: the dates span more months than fit one bar "
        "each, and too many papers are older than any window of recent months to share one bar."
    )


def _text(value: object) -> str:
    """A data value as HTML text: escaped, control characters shown as U+FFFD."""
    shown = "".join("\ufffd" if unicodedata.category(ch) == "Cc" else ch for ch in str(value))
    return html.escape(shown, quote=True)


def _shortened(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _number(n: int) -> str:
    return f"{n:,}"


def _counted(n: int, thing: str) -> str:
    return f"{_number(n)} {thing}" + ("" if n == 1 else "s")


def _percent(share: float) -> str:
    return f"{share:.1%}" if share else "0%"


def _axis_step(top: int) -> int:
    """A round step (1, 2 or 5 times a power of ten) that splits 0..`top` into at most 6 steps."""
    magnitude = 10 ** max(0, math.floor(math.log10(max(top, 1))) - 1)
    return next(base * magnitude for base in (1, 2, 5, 10, 20, 50, 100) if top <= 6 * base * magnitude)


def _category_colour(index: int, category: Category) -> str:
    return OTHER_COLOUR if category.code == OTHER else CATEGORY_COLOURS[index]


def _time_chart(data: ReportData) -> str:
    """Stacked bars of papers per bin of the time axis, one colour per category, with a legend."""
    width, height = 1040, 340
    left, right, top, bottom = 96, 16, 16, 80  # room for rotated bin labels
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(row) for row in data.papers_per_period]
    if data.time is None or not max(totals, default=0):
        return (
            f'<svg id="papers-per-period" class="chart" width="{width}" height="80" viewBox="0 0 {width} 80" '
            'role="img" aria-label="papers over time"><text x="12" y="44" class="empty">no papers</text></svg>'
        )
    step = _axis_step(max(totals))
    scale_top = step * math.ceil(max(totals) / step)
    per_px = plot_h / scale_top
    slot = plot_w / len(totals)
    bar_w = max(slot * 0.8, 1.0)
    parts = [
        f'<svg id="papers-per-period" class="chart" width="{width}" height="{height}" data-unit="{data.time.unit}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="papers per {data.time.unit} by category">'
    ]
    for tick in range(0, scale_top + 1, step):
        y = top + plot_h - tick * per_px
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(tick)}</text>')
    every = max(1, math.ceil(len(totals) / 40))  # labels that stay apart
    for i, (period, row) in enumerate(zip(data.time.labels, data.papers_per_period, strict=True)):
        x = left + i * slot + (slot - bar_w) / 2
        base = float(top + plot_h)
        for j, (category, papers) in enumerate(zip(data.categories, row, strict=True)):
            if not papers:
                continue
            h = papers * per_px
            base -= h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{_category_colour(j, category)}" data-period="{_text(period)}" '
                f'data-category="{_text(category.code)}" data-papers="{papers}"><title>{_text(period)} · '
                f"{_text(category.code)}: {_number(papers)} paper(s)</title></rect>"
            )
        if i % every == 0:
            lx, ly = x + bar_w / 2, top + plot_h + 12
            parts.append(
                f'<text class="tick" x="{lx:.1f}" y="{ly:.1f}" text-anchor="end" '
                f'transform="rotate(-45 {lx:.1f} {ly:.1f})">{_text(period)}</text>'
            )
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="background:{_category_colour(j, c)}"></span>'
        f"<b>{_text(c.code)}</b> {_text(c.name)} ({_number(sum(row[j] for row in data.papers_per_period))})</li>"
        for j, c in enumerate(data.categories)
    )
    return "".join(parts) + f'<ul class="legend">{legend}</ul>'


@dataclass(frozen=True, slots=True)
class _Bar:
    """One bar of a horizontal bar chart: its name, its length, the text after it, its data."""

    name: str
    n: int
    note: str = ""
    data: tuple[tuple[str, int], ...] = ()  # data-* attributes of its rect


def _bar_chart(svg_id: str, label: str, bars: Sequence[_Bar], colour: str, empty: str) -> str:
    """Horizontal bars, one per value, the name beside each and the count (and note) after it."""
    width, row_h, label_w = 1040, 22, 330
    if not bars:
        return (
            f'<svg id="{svg_id}" class="chart" width="{width}" height="40" viewBox="0 0 {width} 40" role="img" '
            f'aria-label="{_text(label)}"><text x="12" y="26" class="empty">{_text(empty)}</text></svg>'
        )
    most = max(b.n for b in bars) or 1
    bar_space = width - label_w - (300 if any(b.note for b in bars) else 90)
    height = row_h * len(bars) + 8
    parts = [
        f'<svg id="{svg_id}" class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{_text(label)}">'
    ]
    for i, bar in enumerate(bars):
        y = 4 + i * row_h
        w = max(bar.n / most * bar_space, 1.0)
        data = "".join(f' data-{key}="{value}"' for key, value in bar.data)
        note = f'<tspan class="note"> · {_text(bar.note)}</tspan>' if bar.note else ""
        parts.append(
            f'<text class="name" x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_text(_shortened(bar.name, 48))}'
            f"<title>{_text(bar.name)}</title></text>"
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}"{data}>'
            f"<title>{_text(bar.name)}: {_number(bar.n)}</title></rect>"
            f'<text class="count" x="{label_w + w + 6:.1f}" y="{y + 15}">{_number(bar.n)}{note}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _authors_section(data: ReportData) -> str:
    bars = [
        _Bar(
            r.name,
            r.papers,
            f"{_counted(r.coauthor_groups, 'co-author group')}, {_counted(r.organizations, 'organisation')}",
            (("papers", r.papers), ("groups", r.coauthor_groups), ("organizations", r.organizations)),
        )
        for r in data.top_authors
    ]
    chart = _bar_chart("top-authors", "top author names by papers", bars, RANK_COLOUR, "no authors")
    return (
        '<section id="authors"><h2>Top author names</h2><p class="muted" id="authors-caption">By number of papers, '
        "per name, not per person: an author is a name as listed (case and accents folded), so different people "
        "who share a name are counted together. After each count: the groups its papers fall into, papers being "
        "in one group when a chain of shared co-authors links them (papers without a listed co-author are not "
        "counted), and the organisations listed on its papers. A name that many people share falls into many "
        f"groups.</p>{chart}</section>"
    )


def _counts_section(data: ReportData) -> str:
    rows = "".join(
        f"<tr><td>{_text(table)}</td><td class='n'>{_number(n)}</td></tr>" for table, n in data.row_counts.items()
    )
    if data.parent_id is None:
        against = "No parent: this is a first version, so every paper is added."
    else:
        against = f"Against the parent version {_text(data.parent_id)}:"
    changes = "".join(
        f"<tr><td>{_text(kind)}</td><td class='n'>{_number(data.changes.get(kind, 0))}</td></tr>"
        for kind in CHANGE_KINDS
    )
    return (
        '<section id="counts"><h2>Rows and changes</h2><div class="pair">'
        f'<table id="row-counts"><thead><tr><th>table</th><th class="n">rows</th></tr></thead><tbody>{rows}</tbody>'
        f'</table><div><p>{against}</p><table id="changes"><thead><tr><th>papers</th><th class="n">count</th>'
        f"</tr></thead><tbody>{changes}</tbody></table></div></div></section>"
    )


def _rejects_section(data: ReportData) -> str:
    total = sum(r.records for r in data.rejects)
    chart = _bar_chart("reject-causes", "rejected records by rule", [_Bar(r.rule, r.records) for r in data.rejects],
                       REJECT_COLOUR, "no record was rejected")  # fmt: skip
    if not data.rejects:
        return f'<section id="rejects"><h2>Reject causes</h2>{chart}</section>'
    rows = "".join(
        f"<tr><td>{_text(r.rule)}</td><td class='n'>{_number(r.records)}</td>"
        f"<td class='n'>{_percent(r.records / total)}</td><td>{_text(_shortened(r.example, 300))}</td></tr>"
        for r in data.rejects
    )
    return (
        f'<section id="rejects"><h2>Reject causes</h2><p>{_number(total)} record(s) rejected.</p>{chart}'
        '<table id="reject-rules"><thead><tr><th>rule</th><th class="n">records</th><th class="n">share</th>'
        f"<th>an example reason</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _nulls_section(data: ReportData) -> str:
    rows = "".join(
        f'<tr class="{"has-nulls" if n.nulls else "no-nulls"}"><td>{_text(n.table)}</td><td>{_text(n.column)}</td>'
        f"<td class='n'>{_number(n.nulls)}</td><td class='n'>{_percent(n.rate)}</td>"
        f'<td class="meter"><span style="width:{n.rate * 100:.1f}%"></span></td></tr>'
        for n in data.nulls
    )
    return (
        '<section id="null-rates"><h2>Null rates</h2><table id="nulls"><thead><tr><th>table</th><th>column</th>'
        f'<th class="n">nulls</th><th class="n">rate</th><th></th></tr></thead><tbody>{rows}</tbody></table></section>'
    )


_STYLE = """
body{margin:0;background:#fff;color:#222;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
main{max-width:1064px;margin:0 auto;padding:16px 12px 40px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:6px 0}td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}
th{font-weight:600}.n{text-align:right;font-variant-numeric:tabular-nums}
.pair{display:flex;gap:48px;align-items:flex-start;flex-wrap:wrap}.pair p{margin:6px 0}
svg.chart{display:block;max-width:100%;height:auto;shape-rendering:crispEdges}
svg text{font-size:12px;fill:#333;shape-rendering:auto}svg text.empty{fill:#777;font-style:italic}
svg tspan.note{fill:#777}
svg .grid{stroke:#e6e6e6}svg .axis{stroke:#888}
.legend{list-style:none;padding:0;margin:8px 0;display:flex;flex-wrap:wrap;gap:4px 18px}
.swatch{display:inline-block;width:11px;height:11px;margin-right:5px;vertical-align:-1px}
.meter{width:160px}.meter span{display:block;height:9px;background:#8a8a8a;min-width:0}
tr.has-nulls td{background:#fbf7ec}.muted{color:#666}
"""


def render_report(data: ReportData) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched."""
    parent = f"parent {_text(data.parent_id)}" if data.parent_id is not None else "no parent (a first version)"
    papers = data.row_counts.get("papers", 0)
    organizations = _bar_chart("top-organizations", "top organisations by papers",
                               [_Bar(r.name, r.papers) for r in data.top_organizations], RANK_COLOUR,
                               "no organisations")  # fmt: skip
    unit = data.time.unit if data.time is not None else "month"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        # Nothing may be fetched nor run, even if a value escaped its escaping.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Paper listings: version {_text(data.version_id)}</title><style>{_STYLE}</style></head><body><main>"
        f'<header><h1>Paper listings: version {_text(data.version_id)}</h1><p class="muted">{parent} · '
        f"{_number(papers)} papers</p></header>"
        f"{_counts_section(data)}"
        f'<section id="papers-over-time"><h2>Papers per {unit} by category</h2>'
        f'<p class="muted" id="time-caption">{_time_caption(data.time)} {_series_caption(data.categories)}</p>'
        f"{_time_chart(data)}</section>{_authors_section(data)}"
        '<section id="organizations"><h2>Top organisations</h2><p class="muted">By number of papers.</p>'
        f"{organizations}</section>"
        f"{_rejects_section(data)}{_nulls_section(data)}</main></body></html>\n"
    )


def version_report_html(
    parts: Mapping[str, Sequence[Part]], version_id: str, parent_id: str | None, row_counts: Mapping[str, int],
    scratch: Path, index: Mapping[str, Sequence[Part]] | None = None,
) -> str:  # fmt: skip
    """`report.html` of a version being written: its tables (`parts`) and indexes (`index`, read
    in their place where they hold what the report shows) summarised, then rendered. DuckDB
    spills (if at all) inside `scratch`, the run's own temporary folder, so that a crash leaves
    nothing elsewhere."""
    return render_report(report_data(parts, version_id, parent_id, row_counts, scratch=scratch, index=index))
