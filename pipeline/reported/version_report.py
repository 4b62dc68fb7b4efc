"""A version's report: its tables summarised in DuckDB (`report_data`), rendered as one offline HTML page (pure)."""

from __future__ import annotations

import html
import math
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset
import pyarrow.parquet as pq

from pipeline.db import connect, is_plain_path, sql_text
from pipeline.settings import READER_MEMORY
from schemas.tables import CHANGE_KINDS, MODELS

TOP_CATEGORIES = 8  # categories drawn apart in the monthly chart; the rest are stacked as "other"
TOP_RANKED = 20  # authors and organisations listed
MAX_MONTHS = 36  # months drawn one by one; papers published before them share one "before" bar

# One colour per top category (Tableau 10), then grey for the rest; the ranked and reject bars
# have colours of their own, so that a screenshot tells the charts apart.
CATEGORY_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#86bcb6")  # fmt: skip
OTHER_COLOUR = "#bab0ac"
RANK_COLOUR = "#3d6b8c"
REJECT_COLOUR = "#c8553d"
OTHER = "other"


@dataclass(frozen=True, slots=True)
class Ranked:
    """A name and the number of papers that carry it."""

    name: str
    papers: int


@dataclass(frozen=True, slots=True)
class RejectCause:
    """One reject rule: how many records it rejected, and one of its reasons as an example."""

    rule: str
    records: int
    example: str


@dataclass(frozen=True, slots=True)
class ColumnNulls:
    """Nulls in one column of one table."""

    table: str
    column: str
    nulls: int
    rows: int

    @property
    def rate(self) -> float:
        """Share of the rows that are null (0 for an empty table)."""
        return self.nulls / self.rows if self.rows else 0.0


@dataclass(frozen=True, slots=True)
class Category:
    """A series of the monthly chart: an arXiv code and its name, or OTHER."""

    code: str
    name: str


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, as plain data."""

    version_id: str
    parent_id: str | None
    row_counts: dict[str, int]  # every table of the contract, in its order
    changes: dict[str, int]  # added, updated, removed since the parent (all three, zeros included)
    months: tuple[str, ...]  # YYYY-MM, oldest first, without gaps; may start with "before YYYY-MM"
    categories: tuple[Category, ...]  # the top categories by papers, then OTHER when the rest hold any
    papers_per_month: tuple[tuple[int, ...], ...]  # [month][category]
    top_authors: tuple[Ranked, ...]
    top_organizations: tuple[Ranked, ...]
    rejects: tuple[RejectCause, ...]  # most records first
    nulls: tuple[ColumnNulls, ...]  # every column of every table, in the contract's order


# --- the data: aggregates over the version's files --------------------------------------------


def _register(con: Any, table: str, file: Path) -> None:
    """`table` as a view of its file. DuckDB's own reader is the fast one, but it reads some
    characters of a path as a pattern: such a path is handed over as an Arrow dataset instead."""
    if not is_plain_path(file):
        con.register(table, pyarrow.dataset.dataset(str(file), format="parquet"))
    else:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({sql_text(str(file))})")


def _month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def monthly_series(
    counts: Sequence[tuple[int, str, int]],
    names: Mapping[str, str],
    top_categories: int = TOP_CATEGORIES,
    max_months: int = MAX_MONTHS,
) -> tuple[tuple[str, ...], tuple[Category, ...], tuple[tuple[int, ...], ...]]:
    """Months, categories and the papers of each (month, category), from (month index = year * 12
    + month - 1, category, papers) rows: the `top_categories` largest categories, the rest summed
    as OTHER; the last `max_months` months without gaps, earlier papers in one "before" month."""
    if not counts:
        return (), (), ()
    totals: dict[str, int] = {}
    for _, code, papers in counts:
        totals[code] = totals.get(code, 0) + papers
    top = sorted(totals, key=lambda code: (-totals[code], code))[:top_categories]
    categories = [Category(code, names.get(code, "")) for code in top]
    if len(totals) > len(top):
        categories.append(Category(OTHER, "all other categories"))
    column = {c.code: i for i, c in enumerate(categories)}
    first = min(month for month, _, _ in counts)
    last = max(month for month, _, _ in counts)
    start = max(first, last - max_months + 1)
    labels = ([f"before {_month_label(start)}"] if first < start else []) + [
        _month_label(m) for m in range(start, last + 1)
    ]
    offset = 1 if first < start else 0
    grid = [[0] * len(categories) for _ in labels]
    for month, code, papers in counts:
        row = 0 if month < start else month - start + offset
        grid[row][column.get(code, len(categories) - 1)] += papers
    return tuple(labels), tuple(categories), tuple(tuple(row) for row in grid)


def _column_nulls(con: Any, table: str, file: Path) -> list[ColumnNulls]:
    """Nulls per column, from the row groups' statistics (no data read); counted by DuckDB for a
    column whose statistics lack them."""
    metadata = pq.read_metadata(file)
    rows = metadata.num_rows
    found = []
    for i in range(metadata.num_columns):
        column = metadata.schema.column(i).name
        chunks = [metadata.row_group(g).column(i).statistics for g in range(metadata.num_row_groups)]
        if all(s is not None and s.has_null_count for s in chunks):
            nulls = sum(s.null_count for s in chunks if s is not None)
        else:
            quoted = '"' + column.replace('"', '""') + '"'
            nulls = con.execute(f"SELECT count(*) - count({quoted}) FROM {table}").fetchall()[0][0]
        found.append(ColumnNulls(table, column, int(nulls), rows))
    return found


def _aggregates(con: Any, top: int) -> tuple[Any, ...]:
    """What the report shows of the tables `con` holds: papers by month and category, category
    names, the `top` authors and organisations, rejects by rule, changes by kind."""
    monthly = con.execute(
        "SELECT year(published) * 12 + month(published) - 1, category, count(*) FROM papers GROUP BY ALL"
    ).fetchall()
    names = dict(con.execute("SELECT category, name FROM categories").fetchall())
    authors = con.execute(
        "SELECT a.name, c.papers FROM (SELECT author_id, count(DISTINCT paper_id) AS papers "
        "FROM paper_authors GROUP BY author_id) c JOIN authors a USING (author_id) "
        "ORDER BY c.papers DESC, a.name, a.author_id LIMIT ?",
        [top],
    ).fetchall()
    organizations = con.execute(
        "SELECT coalesce(o.name, c.org_id), c.papers FROM (SELECT org_id, count(DISTINCT paper_id) AS papers "
        "FROM paper_organizations GROUP BY org_id) c LEFT JOIN organizations o USING (org_id) "
        "ORDER BY c.papers DESC, 1, c.org_id LIMIT ?",
        [top],
    ).fetchall()
    rejects = con.execute("SELECT rule, count(*), min(reason) FROM rejects GROUP BY rule ORDER BY 2 DESC, 1").fetchall()
    changed = dict(con.execute("SELECT change, count(*) FROM changes GROUP BY change").fetchall())
    return monthly, names, authors, organizations, rejects, changed


def report_data(
    files: Mapping[str, Path],
    version_id: str,
    parent_id: str | None,
    top_categories: int = TOP_CATEGORIES,
    top: int = TOP_RANKED,
    max_months: int = MAX_MONTHS,
    scratch: Path | None = None,
) -> ReportData:
    """The report of a version from its Parquet files (every table of the contract, by name),
    wherever they lie: aggregates only, in DuckDB within the readers' memory (`settings.READER_MEMORY`)
    whatever the version's size. DuckDB spills beyond it to a temporary folder in `scratch` (the
    system's when None)."""
    missing = [name for name in MODELS if name not in files]
    if missing:
        raise ValueError(f"no file given for table(s) {', '.join(missing)}")
    if not 0 < top_categories <= len(CATEGORY_COLOURS):
        raise ValueError(f"top_categories must be 1 to {len(CATEGORY_COLOURS)}, one colour each")
    if top < 0 or max_months < 1:
        raise ValueError("top must be 0 or more, and max_months 1 or more")
    with (
        tempfile.TemporaryDirectory(prefix="pipeline-report-", dir=scratch) as spill,
        connect(memory_limit=READER_MEMORY, spill=Path(spill)) as con,
    ):
        for table in MODELS:
            _register(con, table, files[table])
        found = _aggregates(con, top)
        nulls = [n for table in MODELS for n in _column_nulls(con, table, files[table])]
    monthly, names, authors, organizations, rejects, changed = found
    months, categories, grid = monthly_series(monthly, names, top_categories, max_months)
    return ReportData(
        version_id=version_id,
        parent_id=parent_id,
        row_counts={table: pq.read_metadata(files[table]).num_rows for table in MODELS},
        changes={kind: int(changed.get(kind, 0)) for kind in CHANGE_KINDS},
        months=months,
        categories=categories,
        papers_per_month=grid,
        top_authors=tuple(Ranked(str(name), int(n)) for name, n in authors),
        top_organizations=tuple(Ranked(str(name), int(n)) for name, n in organizations),
        rejects=tuple(RejectCause(str(rule), int(n), str(reason)) for rule, n, reason in rejects),
        nulls=tuple(nulls),
    )


# --- the page: pure rendering -----------------------------------------------------------------


def _series_caption(categories: Sequence[Category]) -> str:
    """What the monthly chart's series are, in words that fit their number."""
    named = sum(1 for c in categories if c.code != OTHER)
    if not named:
        return "By publication date; no paper to show."
    if len(categories) > named:
        return f"By publication date; the {named} largest categories, then all others together."
    return f"By publication date; one series per category ({named})."


def _text(value: object) -> str:
    """A data value as HTML text: escaped, control characters shown as U+FFFD."""
    shown = "".join("\ufffd" if unicodedata.category(ch) == "Cc" else ch for ch in str(value))
    return html.escape(shown, quote=True)


def _shortened(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _number(n: int) -> str:
    return f"{n:,}"


def _percent(share: float) -> str:
    return f"{share:.1%}" if share else "0%"


def _axis_step(top: int) -> int:
    """A round step (1, 2 or 5 times a power of ten) that splits 0..`top` into at most 6 steps."""
    magnitude = 10 ** max(0, math.floor(math.log10(max(top, 1))) - 1)
    return next(base * magnitude for base in (1, 2, 5, 10, 20, 50, 100) if top <= 6 * base * magnitude)


def _category_colour(index: int, category: Category) -> str:
    return OTHER_COLOUR if category.code == OTHER else CATEGORY_COLOURS[index]


def _monthly_chart(data: ReportData) -> str:
    """Stacked bars of papers per month, one colour per category, with a legend."""
    width, height = 1040, 340
    left, right, top, bottom = 96, 16, 16, 80  # room for rotated month labels
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(row) for row in data.papers_per_month]
    if not totals or not max(totals):
        return (
            f'<svg id="papers-per-month" class="chart" width="{width}" height="80" viewBox="0 0 {width} 80" '
            'role="img" aria-label="papers per month"><text x="12" y="44" class="empty">no papers</text></svg>'
        )
    step = _axis_step(max(totals))
    scale_top = step * math.ceil(max(totals) / step)
    per_px = plot_h / scale_top
    slot = plot_w / len(totals)
    bar_w = max(slot * 0.8, 1.0)
    parts = [
        f'<svg id="papers-per-month" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="papers per month by category">'
    ]
    for tick in range(0, scale_top + 1, step):
        y = top + plot_h - tick * per_px
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(tick)}</text>')
    every = max(1, math.ceil(len(totals) / 40))  # month labels that stay apart
    for i, (month, row) in enumerate(zip(data.months, data.papers_per_month, strict=True)):
        x = left + i * slot + (slot - bar_w) / 2
        base = float(top + plot_h)
        for j, (category, papers) in enumerate(zip(data.categories, row, strict=True)):
            if not papers:
                continue
            h = papers * per_px
            base -= h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{_category_colour(j, category)}" data-month="{_text(month)}" '
                f'data-category="{_text(category.code)}"><title>{_text(month)} · {_text(category.code)}: '
                f"{_number(papers)} paper(s)</title></rect>"
            )
        if i % every == 0:
            lx, ly = x + bar_w / 2, top + plot_h + 12
            parts.append(
                f'<text class="tick" x="{lx:.1f}" y="{ly:.1f}" text-anchor="end" '
                f'transform="rotate(-45 {lx:.1f} {ly:.1f})">{_text(month)}</text>'
            )
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="background:{_category_colour(j, c)}"></span>'
        f"<b>{_text(c.code)}</b> {_text(c.name)} ({_number(sum(row[j] for row in data.papers_per_month))})</li>"
        for j, c in enumerate(data.categories)
    )
    return "".join(parts) + f'<ul class="legend">{legend}</ul>'


def _bar_chart(svg_id: str, label: str, rows: Sequence[tuple[str, int]], colour: str, empty: str) -> str:
    """Horizontal bars, one per (name, count), the name beside each and the count after it."""
    width, row_h, label_w = 1040, 22, 330
    if not rows:
        return (
            f'<svg id="{svg_id}" class="chart" width="{width}" height="40" viewBox="0 0 {width} 40" role="img" '
            f'aria-label="{_text(label)}"><text x="12" y="26" class="empty">{_text(empty)}</text></svg>'
        )
    most = max(n for _, n in rows) or 1
    bar_space = width - label_w - 90
    height = row_h * len(rows) + 8
    parts = [
        f'<svg id="{svg_id}" class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{_text(label)}">'
    ]
    for i, (name, n) in enumerate(rows):
        y = 4 + i * row_h
        w = max(n / most * bar_space, 1.0)
        parts.append(
            f'<text class="name" x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_text(_shortened(name, 48))}'
            f"<title>{_text(name)}</title></text>"
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}">'
            f"<title>{_text(name)}: {_number(n)}</title></rect>"
            f'<text class="count" x="{label_w + w + 6:.1f}" y="{y + 15}">{_number(n)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


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
    chart = _bar_chart("reject-causes", "rejected records by rule", [(r.rule, r.records) for r in data.rejects],
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
    authors = _bar_chart("top-authors", "top authors by papers", [(r.name, r.papers) for r in data.top_authors],
                         RANK_COLOUR, "no authors")  # fmt: skip
    organizations = _bar_chart("top-organizations", "top organisations by papers",
                               [(r.name, r.papers) for r in data.top_organizations], RANK_COLOUR,
                               "no organisations")  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        # Nothing may be fetched nor run, even if a value escaped its escaping.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Paper listings: version {_text(data.version_id)}</title><style>{_STYLE}</style></head><body><main>"
        f'<header><h1>Paper listings: version {_text(data.version_id)}</h1><p class="muted">{parent} · '
        f"{_number(papers)} papers</p></header>"
        f"{_counts_section(data)}"
        '<section id="papers-by-month"><h2>Papers per month by category</h2>'
        f'<p class="muted">{_series_caption(data.categories)}</p>{_monthly_chart(data)}</section>'
        '<section id="authors"><h2>Top authors</h2><p class="muted">By number of papers.</p>'
        f"{authors}</section>"
        '<section id="organizations"><h2>Top organisations</h2><p class="muted">By number of papers.</p>'
        f"{organizations}</section>"
        f"{_rejects_section(data)}{_nulls_section(data)}</main></body></html>\n"
    )


def version_report_html(files: Mapping[str, Path], version_id: str, parent_id: str | None, scratch: Path) -> str:
    """`report.html` of a version being written: its tables (`files`) summarised, then rendered.
    DuckDB spills (if at all) inside `scratch`, the version's own temporary folder, so that a
    crash leaves nothing elsewhere."""
    return render_report(report_data(files, version_id, parent_id, scratch=scratch))
