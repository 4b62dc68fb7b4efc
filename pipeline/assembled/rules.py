"""The rules a version is assembled by, each declared once as SQL, over every capture or a refresh's new ones.

A full assembly applies them to every staged capture; a refresh applies the same statements to
its new captures and to the parent's indexes, which stand for everything older (a paper's earlier
sightings, the spellings counted so far, how many rows name an author).
"""

from __future__ import annotations

from typing import Any

from pipeline.assembled.captures import select
from pipeline.assembled.index import INDEX_SCHEMAS, REPORTED_PAPER_COLUMNS
from pipeline.parse.content import hash_columns
from schemas.tables import SORTED_BY, arrow_schema

# Order of each light published table: by its key (papers and rejects keep capture, then line order).
ORDER_BY: dict[str, str] = {
    **{table: ", ".join(columns) for table, columns in SORTED_BY.items()},
    "rejects": "ordinal, source_line",
}

# Diacritics carry information that folding removes: of an author's spellings, the one with the
# most non-ASCII letters is shown, then the most often listed, then the greatest.
_RICHEST_FIRST = "non_ascii DESC, listed DESC, name DESC"
_AUTHOR_PARTS = [f.name for f in INDEX_SCHEMAS["author_spellings"] if f.name not in ("author_id", "name", "listed",
                                                                                      "non_ascii")]  # fmt: skip


def staged_sightings() -> str:
    """Each staged papers row as a sighting: the paper, its capture, and the capture's date."""
    return (
        "SELECT s.paper_id, s.ordinal, c.capture_date AS first_seen, c.capture_date AS last_seen "
        "FROM s_papers s JOIN captures c USING (ordinal)"
    )


def create_winners(con: Any, sightings: str) -> None:
    """`now_rows`: for every paper of `sightings` (paper_id, ordinal, first_seen, last_seen), the
    staged row that wins (the latest capture's) and the first and last dates it was seen."""
    con.execute(
        "CREATE TEMP TABLE seen AS SELECT paper_id, max(ordinal) AS ordinal, min(first_seen) AS first_seen, "
        f"max(last_seen) AS last_seen FROM ({sightings}) GROUP BY paper_id"
    )
    con.execute(
        "CREATE TABLE now_rows AS SELECT s.paper_id, s.ordinal, s.source_line, w.first_seen, w.last_seen, s.category "
        "FROM s_papers s JOIN seen w ON s.paper_id = w.paper_id AND s.ordinal = w.ordinal"
    )


def papers_select() -> str:
    """The select list of published papers rows, from a staged row `s`, its winner `n` (`now_rows`)
    and its capture `c`."""
    return select("papers", {"source_file": "c", "first_seen": "n", "last_seen": "n"})


def create_child_rows(con: Any, table: str, target: str) -> None:
    """`target`: the rows of the child table `table` (paper_authors, paper_organizations) of
    every winning staged row (`now_rows`), in key order."""
    con.execute(
        f"CREATE TEMP TABLE {target}_unsorted AS SELECT {select(table, {})} FROM s_{table} s "
        "SEMI JOIN now_rows n ON s.paper_id = n.paper_id AND s.ordinal = n.ordinal"
    )
    # Join, then sort: in one statement the two can need more than the memory limit; apart, each spills.
    con.execute(f"CREATE TABLE {target} AS SELECT * FROM {target}_unsorted ORDER BY {ORDER_BY[table]}")
    con.execute(f"DROP TABLE {target}_unsorted")


def create_content(con: Any) -> None:
    """`now_content`: the content hashes of every winning row, from the staged hashes."""
    hashes = ", ".join(f'c."{h}"' for h in hash_columns())
    con.execute(
        f"CREATE TABLE now_content AS SELECT c.paper_id, {hashes} FROM s_paper_content c "
        "SEMI JOIN now_rows n ON c.paper_id = n.paper_id AND c.ordinal = n.ordinal"
    )


def create_paper_index(con: Any, target: str, authors: str, orgs: str) -> None:
    """`target`: the paper index rows of the winning rows, from `now_rows`, `now_content`, the
    staged rows (what the report reads of them) and their child rows (`authors`, `orgs`: tables
    of paper_authors and paper_organizations rows)."""
    columns = [f.name for f in INDEX_SCHEMAS["paper_index"]]
    sources = {
        "source_file": "c.source_file",
        "author_rows": "coalesce(a.n, 0)",
        "org_rows": "coalesce(o.n, 0)",
        **{h: f'h."{h}"' for h in hash_columns()},
        **{kept: f's."{c}"' for c, kept in REPORTED_PAPER_COLUMNS.items()},
    }
    chosen = ", ".join(f'{sources.get(c, f"n.{c}")} AS "{c}"' for c in columns)
    con.execute(
        f"CREATE TABLE {target} AS SELECT {chosen} FROM now_rows n JOIN captures c USING (ordinal) "
        "JOIN now_content h USING (paper_id) "
        "JOIN s_papers s ON s.paper_id = n.paper_id AND s.ordinal = n.ordinal "
        f"LEFT JOIN (SELECT paper_id, count(*) AS n FROM {authors} GROUP BY paper_id) a USING (paper_id) "
        f"LEFT JOIN (SELECT paper_id, count(*) AS n FROM {orgs} GROUP BY paper_id) o USING (paper_id) "
        "ORDER BY paper_id"
    )


def spellings_select(rows: str) -> str:
    """The spellings counted in the staged paper_authors rows `rows`: how often each author was
    listed in each spelling, with the spelling's letters beyond ASCII and its name parts."""
    parts = ", ".join(f'any_value("{c}") AS "{c}"' for c in _AUTHOR_PARTS)
    return (
        "SELECT author_id, name, count(*) AS listed, "
        "length(regexp_replace(name, '[\\x00-\\x7F]', '', 'g')) AS non_ascii, "
        f"{parts} FROM {rows} GROUP BY author_id, name"
    )


def merged_spellings_select(*relations: str) -> str:
    """Spellings counted in several relations of `author_spellings` rows, added up."""
    parts = ", ".join(f'any_value("{c}") AS "{c}"' for c in _AUTHOR_PARTS)
    union = " UNION ALL ".join(f"SELECT * FROM {r}" for r in relations)
    return (
        f"SELECT author_id, name, sum(listed)::BIGINT AS listed, any_value(non_ascii) AS non_ascii, {parts} "
        f"FROM ({union}) GROUP BY author_id, name"
    )


def refs_select(rows: str, key: str) -> str:
    """How many rows of `rows` name each `key` (author_id or org_id)."""
    return f"SELECT {key}, count(*)::BIGINT AS refs FROM {rows} GROUP BY {key}"


def authors_select(spellings: str, refs: str) -> str:
    """The published authors: every author some row names (`refs` > 0), in their richest spelling
    (`spellings`), by author_id."""
    columns = ", ".join(f's."{c}"' for c in arrow_schema("authors").names)
    return (
        f"SELECT {columns} FROM {spellings} s JOIN {refs} r USING (author_id) WHERE r.refs > 0 "
        f"QUALIFY row_number() OVER (PARTITION BY s.author_id ORDER BY {_RICHEST_FIRST}) = 1"
    )


def organizations_select(org_refs: str) -> str:
    """The published organisations: every registry entry, and every other slug some row names."""
    return (
        "SELECT * FROM (SELECT org_id, name, ror_id FROM registry UNION ALL "
        f"SELECT org_id, NULL, NULL FROM {org_refs} WHERE refs > 0 AND org_id NOT IN (SELECT org_id FROM registry)) "
        f"ORDER BY {ORDER_BY['organizations']}"
    )


def rejects_select() -> str:
    """Every staged reject as a published row, in capture then line order."""
    return (
        f"SELECT {select('rejects', {'source_file': 'c'})} FROM s_rejects s JOIN captures c USING (ordinal) "
        f"ORDER BY {ORDER_BY['rejects']}"
    )
