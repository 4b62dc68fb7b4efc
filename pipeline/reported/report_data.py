"""A version's report as plain data: its tables summarised in DuckDB, within the readers' memory."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.assembled.generations import REPLACED_BY, Part, live_sql
from pipeline.assembled.index import reported_papers_sql
from pipeline.db import connect
from pipeline.reported.series import MAX_BARS, TimeBins, coauthor_groups, time_bins
from pipeline.settings import READER_MEMORY
from schemas.tables import CHANGE_KINDS, MODELS, arrow_schema

TOP_CATEGORIES = 8  # categories drawn apart in the time chart; the rest are stacked as "other"
TOP_RANKED = 20  # authors and organisations listed
MAX_TOP_CATEGORIES = 10  # the page has a colour for each

OTHER = "other"


@dataclass(frozen=True, slots=True)
class Ranked:
    """A name and the number of papers that carry it."""

    name: str
    papers: int


@dataclass(frozen=True, slots=True)
class RankedName:
    """An author's name (a name key: different people who share it are one) and what tells the
    people behind it apart: the groups of co-authors its papers fall into, the organisations on them."""

    name: str
    papers: int
    coauthor_groups: int  # see `series.coauthor_groups`
    organizations: int  # distinct organisations listed on its papers


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
    """A series of the papers-over-time chart: an arXiv code and its name, or OTHER."""

    code: str
    name: str


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, as plain data."""

    version_id: str
    parent_id: str | None
    row_counts: dict[str, int]  # every table of the contract, in its order
    changes: dict[str, int]  # added, updated, removed since the parent (all three, zeros included)
    time: TimeBins | None  # the time axis (None without papers)
    categories: tuple[Category, ...]  # the top categories by papers, then OTHER when the rest hold any
    papers_per_period: tuple[tuple[int, ...], ...]  # [bar of the time axis][category]
    top_authors: tuple[RankedName, ...]
    top_organizations: tuple[Ranked, ...]
    rejects: tuple[RejectCause, ...]  # most records first
    nulls: tuple[ColumnNulls, ...]  # every column of every table, in the contract's order


def papers_by_period(
    counts: Sequence[tuple[int, str, int]],
    names: Mapping[str, str],
    top_categories: int = TOP_CATEGORIES,
    max_bars: int = MAX_BARS,
) -> tuple[TimeBins | None, tuple[Category, ...], tuple[tuple[int, ...], ...]]:
    """The time axis, categories and the papers of each (bar, category), from (month index = year *
    12 + month - 1, category, papers) rows: the `top_categories` largest categories, the rest summed
    as OTHER; bars of the unit that fits the data's span (`series.time_bins`)."""
    by_month: dict[int, int] = {}
    totals: dict[str, int] = {}
    for month, code, papers in counts:
        by_month[month] = by_month.get(month, 0) + papers
        totals[code] = totals.get(code, 0) + papers
    bins = time_bins(by_month, max_bars)
    if bins is None:
        return None, (), ()
    top = sorted(totals, key=lambda code: (-totals[code], code))[:top_categories]
    categories = [Category(code, names.get(code, "")) for code in top]
    if len(totals) > len(top):
        categories.append(Category(OTHER, "all other categories"))
    column = {c.code: i for i, c in enumerate(categories)}
    grid = [[0] * len(categories) for _ in bins.labels]
    for month, code, papers in counts:
        grid[bins.bar(month)][column.get(code, len(categories) - 1)] += papers
    return bins, tuple(categories), tuple(tuple(row) for row in grid)


def _column_nulls(con: Any, table: str, rows: int) -> list[ColumnNulls]:
    """Nulls per column of a table: none where the contract forbids them (every row was checked
    as it was written); counted by DuckDB in the nullable columns, which are all narrow."""
    found = []
    for field in arrow_schema(table):
        if field.nullable:
            quoted = '"' + field.name.replace('"', '""') + '"'
            nulls = int(con.execute(f"SELECT count(*) - count({quoted}) FROM {table}").fetchall()[0][0])
        else:
            nulls = 0
        found.append(ColumnNulls(table, field.name, nulls, rows))
    return found


def _aggregates(con: Any, top: int, author_rows: str) -> tuple[Any, ...]:
    """What the report shows of the tables `con` holds: papers by month and category, category
    names, the `top` authors and organisations, rejects by rule, changes by kind."""
    monthly = con.execute(
        "SELECT year(published) * 12 + month(published) - 1, category, count(*) FROM papers GROUP BY ALL"
    ).fetchall()
    names = dict(con.execute("SELECT category, name FROM categories").fetchall())
    organizations = con.execute(
        "SELECT coalesce(o.name, c.org_id), c.papers FROM (SELECT org_id, count(DISTINCT paper_id) AS papers "
        "FROM paper_organizations GROUP BY org_id) c LEFT JOIN organizations o USING (org_id) "
        "ORDER BY c.papers DESC, 1, c.org_id LIMIT ?",
        [top],
    ).fetchall()
    rejects = con.execute("SELECT rule, count(*), min(reason) FROM rejects GROUP BY rule ORDER BY 2 DESC, 1").fetchall()
    changed = dict(con.execute("SELECT change, count(*) FROM changes GROUP BY change").fetchall())
    return monthly, names, _top_authors(con, top, author_rows), organizations, rejects, changed


def _top_authors(con: Any, top: int, author_rows: str) -> list[RankedName]:
    """The `top` names by papers, each with its co-author groups and organisations (`author_rows`:
    a query of each author's rows in paper_authors, as author_id and n)."""
    con.execute(f"CREATE TEMP TABLE author_rows AS {author_rows}")
    # A name's rows bound its distinct papers from above, and counting distinct papers means reading
    # paper_authors: only names with as many rows as the fewest papers among the `top` names with
    # the most rows can rank (exact, ties included). The rows of the `wide` names with the most rows
    # are read once; a second read only when more names than that could rank.
    wide = 4 * top + 20
    con.execute(
        "CREATE TEMP TABLE candidate_rows AS SELECT author_id, paper_id FROM paper_authors WHERE author_id IN "
        "(SELECT author_id FROM author_rows ORDER BY n DESC, author_id LIMIT ?)",
        [wide],
    )
    floor = con.execute(
        "SELECT min(d) FROM (SELECT count(DISTINCT paper_id) AS d FROM candidate_rows WHERE author_id IN "
        "(SELECT author_id FROM author_rows ORDER BY n DESC, author_id LIMIT ?) GROUP BY author_id)",
        [top],
    ).fetchall()[0][0]
    (could_rank,) = con.execute("SELECT count(*) FROM author_rows WHERE n >= ?", [floor or 0]).fetchall()[0]
    if could_rank > wide:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE candidate_rows AS SELECT author_id, paper_id FROM paper_authors "
            "WHERE author_id IN (SELECT author_id FROM author_rows WHERE n >= ?)",
            [floor or 0],
        )
    con.execute(
        "CREATE TEMP TABLE top_authors AS SELECT a.author_id, a.name, c.papers FROM (SELECT author_id, "
        "count(DISTINCT paper_id) AS papers FROM candidate_rows WHERE author_id IN "
        "(SELECT author_id FROM author_rows WHERE n >= ?) GROUP BY author_id) c JOIN authors a USING (author_id) "
        "ORDER BY c.papers DESC, a.name, a.author_id LIMIT ?",
        [floor or 0, top],
    )
    rows = con.execute("SELECT author_id, name, papers FROM top_authors ORDER BY papers DESC, name, author_id")
    ranked = rows.fetchall()
    own = "own AS (SELECT author_id, paper_id FROM candidate_rows SEMI JOIN top_authors USING (author_id))"
    links: dict[str, list[tuple[str, str]]] = {}
    pairs = con.execute(
        f"WITH {own} SELECT DISTINCT own.author_id, own.paper_id, co.author_id FROM own "
        "JOIN paper_authors co ON co.paper_id = own.paper_id AND co.author_id <> own.author_id"
    ).fetchall()
    for author, paper, coauthor in pairs:
        links.setdefault(author, []).append((paper, coauthor))
    organizations = dict(
        con.execute(
            f"WITH {own} SELECT own.author_id, count(DISTINCT o.org_id) FROM own "
            "JOIN paper_organizations o USING (paper_id) GROUP BY 1"
        ).fetchall()
    )
    return [
        RankedName(str(name), int(papers), coauthor_groups(links.get(author, ())), int(organizations.get(author, 0)))
        for author, name, papers in ranked
    ]


def report_data(
    parts: Mapping[str, Sequence[Part]],
    version_id: str,
    parent_id: str | None,
    row_counts: Mapping[str, int],
    top_categories: int = TOP_CATEGORIES,
    top: int = TOP_RANKED,
    max_bars: int = MAX_BARS,
    scratch: Path | None = None,
    index: Mapping[str, Sequence[Part]] | None = None,
) -> ReportData:
    """The report of a version from its tables' files (every table of the contract, by name, as
    local parts; `row_counts` its tables' rows): aggregates only, in DuckDB within the readers'
    memory (`settings.READER_MEMORY`) whatever the version's size. DuckDB spills beyond it to a
    temporary folder in `scratch` (the system's when None). With the version's `index` (its
    indexes' parts, by name), what the report shows of papers (dates, categories, nulls) is read
    from the paper index, not from the papers' files, which hold their texts, and each author's
    rows from the author index."""
    index = index or {}
    missing = [name for name in MODELS if name not in parts]
    if missing:
        raise ValueError(f"no file given for table(s) {', '.join(missing)}")
    if not 0 < top_categories <= MAX_TOP_CATEGORIES:
        raise ValueError(f"top_categories must be 1 to {MAX_TOP_CATEGORIES}, one colour each")
    if top < 0 or max_bars < 2:
        raise ValueError("top must be 0 or more, and max_bars 2 or more")
    with (
        tempfile.TemporaryDirectory(prefix="pipeline-report-", dir=scratch) as spill,
        connect(memory_limit=READER_MEMORY, spill=Path(spill)) as con,
    ):
        for table in MODELS:
            sql = live_sql(parts[table], REPLACED_BY[table]) if parts[table] else ""
            if table == "papers" and index.get("paper_index"):
                sql = reported_papers_sql(live_sql(index["paper_index"], REPLACED_BY["paper_index"]))
            con.execute(f"CREATE TEMP VIEW {table} AS {sql}")
        author_rows = "SELECT author_id, count(*) AS n FROM paper_authors GROUP BY ALL"
        if index.get("author_refs"):
            author_rows = (
                f"SELECT author_id, refs AS n FROM ({live_sql(index['author_refs'], REPLACED_BY['author_refs'])})"
            )
        found = _aggregates(con, top, author_rows)
        nulls = [n for table in MODELS for n in _column_nulls(con, table, row_counts[table])]
    monthly, names, authors, organizations, rejects, changed = found
    time, categories, grid = papers_by_period(monthly, names, top_categories, max_bars)
    return ReportData(
        version_id=version_id,
        parent_id=parent_id,
        row_counts={table: int(row_counts[table]) for table in MODELS},
        changes={kind: int(changed.get(kind, 0)) for kind in CHANGE_KINDS},
        time=time,
        categories=categories,
        papers_per_period=grid,
        top_authors=tuple(authors),
        top_organizations=tuple(Ranked(str(name), int(n)) for name, n in organizations),
        rejects=tuple(RejectCause(str(rule), int(n), str(reason)) for rule, n, reason in rejects),
        nulls=tuple(nulls),
    )
