"""A refresh assembled incrementally: only its new captures, against the parent's indexes; what changed, as rows to add.

It applies when every capture of the parent is still there and every new one comes after all of
them (the usual scheduled refresh): then each paper the new captures list wins from its newest
listing, and nothing else changes. Its rows are written as a newer generation of each table,
superseding the parent's rows of the same key; the rest of the parent is shared as it is. The
result equals a full assembly of every capture (`pipeline.assembled.build`), which applies the
same rules (`pipeline.assembled.rules`) to all of them; a property test checks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.assembled.batches import papers_batches, relation_batches
from pipeline.assembled.build import assembly_database, open_assembly
from pipeline.assembled.captures import Assembled, CaptureFiles, ParentVersion, TableRows, count
from pipeline.assembled.changes import compare
from pipeline.assembled.generations import REPLACED_BY, live_sql
from pipeline.assembled.index import INDEX_NAMES, INDEX_SCHEMAS
from pipeline.assembled.rules import (
    authors_select,
    create_child_rows,
    create_content,
    create_paper_index,
    create_winners,
    merged_spellings_select,
    organizations_select,
    rejects_select,
    spellings_select,
    staged_sightings,
)
from pipeline.parse.content import hash_columns
from pipeline.parse.reference import Reference
from schemas.tables import MODELS

_CHILDREN = {"paper_authors": ("authors", "author_rows", "author_id"),
             "paper_organizations": ("organizations", "org_rows", "org_id")}  # fmt: skip


def refresh_version(
    database: Path,
    captures: Sequence[CaptureFiles],
    reference: Reference,
    parent: ParentVersion,
    memory_limit: str | None = None,
) -> Assembled:
    """Assemble the new `captures` (each later than every capture of `parent`, none of the
    parent's gone) against the parent's indexes: the rows that change, by table and index."""
    with assembly_database(database, memory_limit) as con:
        open_assembly(con, captures, reference)
        con.execute("CREATE TEMP TABLE listed AS SELECT DISTINCT paper_id FROM s_papers")
        _load(con, "then_index", parent, "paper_index", "SEMI JOIN listed USING (paper_id)")
        # The parent's rows of a paper stand for its earlier sightings: all before the new ones.
        create_winners(
            con, f"{staged_sightings()} UNION ALL SELECT paper_id, -1, first_seen, last_seen FROM then_index"
        )
        create_content(con)
        for table, (hashed, _, _) in _CHILDREN.items():
            create_child_rows(con, table, f"now_{table}")
            _rewritten_children(con, table, hashed)
        _old_children(con, parent)
        _authors(con, parent)
        _organizations(con, parent)
        con.execute(f"CREATE VIEW rejects AS {rejects_select()}")
        create_paper_index(con, "paper_index", "now_paper_authors", "now_paper_organizations")
        hashes = ", ".join(f'"{h}"' for h in hash_columns())
        con.execute(f"CREATE TEMP VIEW then_content AS SELECT paper_id, {hashes} FROM then_index")
        compare(con)
        result = _result(con, database, parent)
    return result


def _load(con: Any, target: str, parent: ParentVersion, index: str, tail: str = "") -> None:
    """`target`: rows of one of the parent's indexes (`tail` restricts them)."""
    sql = live_sql(parent.index[index], REPLACED_BY[index])
    con.execute(f"CREATE TABLE {target} AS SELECT * FROM ({sql}) {tail}")


def _rewritten_children(con: Any, table: str, hashed: str) -> None:
    """`<table>`: the child rows to write, those of papers that are new or whose list changed
    (an unchanged list keeps the parent's rows); `dropped_<table>`: papers whose list is now empty."""
    rewrite = f"rewrite_{table}"
    con.execute(
        f"CREATE TEMP TABLE {rewrite} AS SELECT n.paper_id, t.paper_id IS NOT NULL AS replaced "
        "FROM now_content n LEFT JOIN then_index t USING (paper_id) "
        f'WHERE t.paper_id IS NULL OR t."{hashed}" <> n."{hashed}"'
    )
    con.execute(f"CREATE TABLE {table} AS SELECT * FROM now_{table} SEMI JOIN {rewrite} USING (paper_id) "
                "ORDER BY paper_id, position")  # fmt: skip
    rows = _CHILDREN[table][1]
    con.execute(
        f"CREATE TABLE dropped_{table} AS SELECT t.paper_id FROM then_index t SEMI JOIN {rewrite} r USING (paper_id) "
        f"WHERE t.{rows} > 0 AND t.paper_id NOT IN (SELECT paper_id FROM {table}) ORDER BY paper_id"
    )


def _old_children(con: Any, parent: ParentVersion) -> None:
    """`then_<table>`: the parent's child rows of papers whose list is rewritten (read from the
    parent's tables only when there are any: an unchanged list needs none)."""
    for table, (_, _, key) in _CHILDREN.items():
        replaced = count(con, f"SELECT count(*) FROM rewrite_{table} WHERE replaced")
        if not replaced:
            con.execute(f"CREATE TABLE then_{table} AS SELECT NULL::VARCHAR AS paper_id, NULL::VARCHAR AS {key} "
                        "WHERE false")  # fmt: skip
            continue
        sql = live_sql(parent.tables([table])[table], REPLACED_BY[table])
        con.execute(
            f"CREATE TABLE then_{table} AS SELECT paper_id, {key} FROM ({sql}) "
            f"SEMI JOIN (SELECT paper_id FROM rewrite_{table} WHERE replaced) USING (paper_id)"
        )


def _authors(con: Any, parent: ParentVersion) -> None:
    """The author rows that change: spellings counted anew where the new captures list an author,
    rows naming each author counted anew where child rows change, and the published row of every
    such author chosen again by the same rule as a full assembly's."""
    con.execute(f"CREATE TABLE spelling_delta AS {spellings_select('s_paper_authors')}")
    con.execute(
        "CREATE TEMP TABLE touched_authors AS SELECT author_id FROM spelling_delta UNION "
        "SELECT author_id FROM paper_authors UNION SELECT author_id FROM then_paper_authors"
    )
    _load(con, "then_spellings", parent, "author_spellings", "SEMI JOIN touched_authors USING (author_id)")
    _load(con, "then_refs", parent, "author_refs", "SEMI JOIN touched_authors USING (author_id)")
    con.execute(f"CREATE TABLE spellings_now AS {merged_spellings_select('then_spellings', 'spelling_delta')}")
    con.execute(
        "CREATE TABLE author_spellings AS SELECT * FROM spellings_now SEMI JOIN spelling_delta USING (author_id, name) "
        "ORDER BY author_id, name"
    )
    con.execute(
        "CREATE TABLE refs_now AS SELECT author_id, sum(refs)::BIGINT AS refs FROM (SELECT author_id, refs FROM "
        "then_refs UNION ALL SELECT author_id, 1 FROM paper_authors UNION ALL SELECT author_id, -1 FROM "
        "then_paper_authors) GROUP BY author_id"
    )
    con.execute(
        "CREATE TABLE author_refs AS SELECT r.* FROM refs_now r LEFT JOIN then_refs t USING (author_id) "
        "WHERE t.refs IS DISTINCT FROM r.refs ORDER BY author_id"
    )
    con.execute(f"CREATE TABLE authors_then AS {authors_select('then_spellings', 'then_refs')}")
    con.execute(f"CREATE TABLE authors_now AS {authors_select('spellings_now', 'refs_now')}")
    con.execute("CREATE TABLE authors AS SELECT * FROM (SELECT * FROM authors_now EXCEPT SELECT * FROM authors_then) "
                "ORDER BY author_id")  # fmt: skip
    con.execute(
        "CREATE TABLE dropped_authors AS SELECT author_id FROM authors_then "
        "WHERE author_id NOT IN (SELECT author_id FROM authors_now) ORDER BY author_id"
    )


def _organizations(con: Any, parent: ParentVersion) -> None:
    """Slugs counted anew (a small index, written whole), and the organisations table from them."""
    _load(con, "then_org_refs", parent, "org_refs")
    con.execute(
        "CREATE TABLE org_refs AS SELECT org_id, sum(refs)::BIGINT AS refs FROM (SELECT org_id, refs FROM "
        "then_org_refs UNION ALL SELECT org_id, 1 FROM paper_organizations UNION ALL SELECT org_id, -1 FROM "
        "then_paper_organizations) GROUP BY org_id HAVING sum(refs) > 0 ORDER BY org_id"
    )
    con.execute(f"CREATE TABLE organizations AS {organizations_select('org_refs')}")


def _result(con: Any, database: Path, parent: ParentVersion) -> Assembled:
    """The rows to write and the new version's row counts, from the parent's and the change."""
    n = partial(count, con)
    before = parent.row_counts
    replaced_papers = n("SELECT count(*) FROM then_index")
    written = {name: n(f"SELECT count(*) FROM {name}") for name in
               ("paper_authors", "paper_organizations", "authors", "rejects", "organizations", "categories",
                "changes", "author_spellings", "author_refs", "org_refs")}  # fmt: skip
    written["papers"] = written["paper_index"] = n("SELECT count(*) FROM now_rows")

    def replaced_children(table: str) -> int:
        rows = _CHILDREN[table][1]
        return n(f"SELECT coalesce(sum(t.{rows}), 0) FROM then_index t SEMI JOIN rewrite_{table} USING (paper_id)")

    dropped = {name: n(f"SELECT count(*) FROM dropped_{name}") for name in
               ("paper_authors", "paper_organizations", "authors")}  # fmt: skip
    found = {
        "papers": before["papers"] + written["papers"] - replaced_papers,
        "paper_authors": before["paper_authors"] + written["paper_authors"] - replaced_children("paper_authors"),
        "paper_organizations": before["paper_organizations"]
        + written["paper_organizations"]
        - replaced_children("paper_organizations"),
        "authors": before["authors"]
        + written["authors"]
        - dropped["authors"]
        - n("SELECT count(*) FROM authors SEMI JOIN authors_then USING (author_id)"),
        "rejects": before["rejects"] + written["rejects"],
        **{name: written[name] for name in ("organizations", "categories", "changes")},
    }
    counts = {name: found[name] for name in MODELS}
    index_before = parent.index_counts
    index_counts = {
        "paper_index": index_before["paper_index"] + written["paper_index"] - replaced_papers,
        "author_spellings": index_before["author_spellings"]
        + written["author_spellings"]
        - n("SELECT count(*) FROM author_spellings SEMI JOIN then_spellings USING (author_id, name)"),
        "author_refs": index_before["author_refs"]
        + written["author_refs"]
        - n("SELECT count(*) FROM author_refs SEMI JOIN then_refs USING (author_id)"),
        "org_refs": written["org_refs"],
    }

    def rows(name: str) -> TableRows:
        reader = partial(papers_batches, database) if name == "papers" else partial(relation_batches, database, name)
        whole = name in ("organizations", "categories", "changes", "org_refs")
        drop = partial(relation_batches, database, f"dropped_{name}") if name in dropped else None
        return TableRows(reader, written[name], whole, dropped=drop, dropped_count=dropped.get(name, 0))

    changes = dict(con.execute("SELECT change, count(*) FROM changes GROUP BY change").fetchall())
    tables = {name: rows(name) for name in counts}
    index = {name: rows(name) for name in INDEX_NAMES}
    assert set(index_counts) == set(INDEX_SCHEMAS)
    return Assembled(database, True, tables, index, counts, index_counts, changes, before["papers"])
