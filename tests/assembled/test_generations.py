"""A table's live rows across generations: every row but those a newer generation replaces, read
within a reader's memory however many generations there are."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.assembled.generations import Part, live_sql
from pipeline.db import connect

NEWER = 10  # ten daily refreshes on top of a first version


def _generations(folder: Path, papers: int) -> list[Part]:
    """A first generation of `papers` papers, then NEWER of 1,000 each, partly replacing it."""
    con = duckdb.connect()
    paper_id = "'p' || lpad(({}::BIGINT)::VARCHAR, 9, '0')"
    con.execute(f"COPY (SELECT {paper_id.format('i')} AS paper_id, i AS v FROM range({papers}) t(i)) "
                f"TO '{folder / 'g1.parquet'}'")  # fmt: skip
    parts = [Part(folder / "g1.parquet", 1)]
    for generation in range(2, NEWER + 2):
        path = folder / f"g{generation}.parquet"
        con.execute(f"COPY (SELECT {paper_id.format(f'i * 7 + {generation}')} AS paper_id, i AS v "
                    f"FROM range(1000) t(i)) TO '{path}'")  # fmt: skip
        parts.append(Part(path, generation))
    return parts


def test_newer_rows_replace_older_ones_by_key(tmp_path: Path) -> None:
    parts = _generations(tmp_path, 20_000)
    with connect(memory_limit=None) as con:
        live = con.execute(f"SELECT paper_id, v FROM ({live_sql(parts, ['paper_id'])})").fetchall()
        everyone = con.execute(
            f"SELECT count(DISTINCT paper_id) FROM read_parquet({[str(p.path) for p in parts]})"
        ).fetchall()[0][0]
    assert len(live) == everyone  # one row a key
    newest = {}
    for part in parts:  # generation order: a later one overwrites
        newest.update(duckdb.sql(f"SELECT paper_id, v FROM '{part.path}'").fetchall())
    assert dict(live) == newest


def test_live_rows_of_1m_papers_after_ten_refreshes_stay_within_72_mb(tmp_path: Path) -> None:
    # The newer generations' keys were a UNION ALL of one scan per file, a join build side DuckDB
    # did not spill: this ran out of 72 MB (and a 1M-paper report of its 192 MB). One scan of
    # them passes within 64 MB.
    parts = _generations(tmp_path, 1_000_000)
    with connect(memory_limit="72MB", spill=tmp_path / "spill") as con:
        (count,) = con.execute(f"SELECT count(*) FROM ({live_sql(parts, ['paper_id'])})").fetchall()[0]
    assert count == 1_000_000
