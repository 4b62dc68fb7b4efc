"""Versions the report is checked on: the sample and an edited child of it (published as a run
would), and a large generated one: 200k papers over three decades, mostly old, and names that many
unrelated people share (written straight as Parquet, one file per table; the columns the report
does not chart are filled in)."""

from __future__ import annotations

from collections import deque
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.assembled.generations import Part
from pipeline.published import Store, version_parts
from pipeline.reported.report_data import ReportData, report_data
from schemas.tables import MODELS, arrow_schema

CAPTURE = date(2026, 11, 26)
STRAY = "<script>alert(1)</script> a line that belongs to no record\n"
UNKNOWN_CATEGORY = "ZZMar 1, 2025\nA Study of GraphsAnn Lee\nAbstract.\n"


def edited_sample(text: str) -> str:
    """The sample without its first paper, with the abstract of its second changed, and two rejects."""
    lines = text.splitlines(keepends=True)
    records = ["".join(lines[i : i + 3]) for i in range(0, len(lines), 3)]
    header, title, _ = records[1].splitlines(keepends=True)
    edited = [header + title + "A different abstract.\n", *records[2:]]
    return STRAY + "".join(r if r.endswith("\n") else r + "\n" for r in edited) + UNKNOWN_CATEGORY


def version_folder(out: Path | str, version_id: str) -> Path:
    """The folder of a version of the store at `out` (``OUT/versions/<id>``), as a path."""
    return Path(Store.open(out).version_url(version_id))


def folder_report_data(folder: Path | str) -> ReportData:
    """The report data of a published version, from its folder ``OUT/versions/<id>``, as the
    publish step makes it: ids and row counts from its manifest, its files verified against the
    manifest's sha256 first (VersionDamagedError otherwise)."""
    folder = Path(folder)
    store = Store.open(folder.parent.parent)
    manifest = store.manifest(folder.name)
    parts = version_parts(store, manifest)
    return report_data(parts, manifest.id, manifest.parent_id, manifest.row_counts)


PAPERS = 200_000
FIRST, LAST = date(1995, 1, 1), date(2026, 10, 31)
RECENT = date(2023, 11, 1)  # 70% of the papers come before it, as in a backfill of old listings
COMMON_NAMES = ("Yang Liu", "Hao Chen", "Hao Wang", "Chang Liu", "Wei Zhang")


def _days(rng: np.random.Generator, start: date, end: date, n: int) -> np.ndarray:
    first, last = np.datetime64(start, "D"), np.datetime64(end, "D")
    return first + rng.integers(0, int((last - first).astype(int)) + 1, n)


def ranked(links: pd.DataFrame, key: str, names: pd.Series, top: int = 20) -> list[tuple[str, int]]:
    """Names by distinct papers, most first, ties by name: the report's ranking, in pandas."""
    papers = links.groupby(key)["paper_id"].nunique()
    ranked = sorted(((str(names[k]), int(n)) for k, n in papers.items()), key=lambda r: (-r[1], r[0]))
    return ranked[:top]


def coauthor_components(paper_authors: pd.DataFrame, author: str) -> int:
    """The groups of `author`'s papers linked by shared co-authors, by a breadth-first search over
    a graph of papers (a second way to the report's union-find)."""
    own = set(paper_authors.loc[paper_authors["author_id"] == author, "paper_id"])
    others = paper_authors[paper_authors["paper_id"].isin(own) & (paper_authors["author_id"] != author)]
    by_coauthor = others.groupby("author_id")["paper_id"].apply(set)
    by_paper = others.groupby("paper_id")["author_id"].apply(set)
    seen: set[str] = set()
    groups = 0
    for start in by_paper.index:
        if start in seen:
            continue
        groups += 1
        queue = deque([start])
        seen.add(start)
        while queue:
            for coauthor in by_paper[queue.popleft()]:
                for paper in by_coauthor[coauthor] - seen:
                    seen.add(paper)
                    queue.append(paper)
    return groups


def expected_top_authors(tables: dict[str, pd.DataFrame]) -> list[tuple[str, int, int, int]]:
    """The report's top authors, computed in pandas: name, papers, co-author groups, organisations."""
    links, orgs = tables["paper_authors"], tables["paper_organizations"]
    names = tables["authors"].set_index("author_id")["name"]
    by_name = {str(names[k]): k for k in names.index}
    rows = []
    for name, papers in ranked(links, "author_id", names):
        author = by_name[name]
        own = links.loc[links["author_id"] == author, "paper_id"]
        organizations = orgs.loc[orgs["paper_id"].isin(own), "org_id"].nunique()
        rows.append((name, papers, coauthor_components(links, author), int(organizations)))
    return rows


def large_tables(seed: int = 22) -> dict[str, pd.DataFrame]:
    """The generated version's tables: papers, authors and organisations and their links, the
    categories they use, a few rejects, and every paper added."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"p{i:07d}" for i in range(PAPERS)])
    old = int(PAPERS * 0.7)
    published = np.concatenate([_days(rng, FIRST, date(2023, 10, 31), old), _days(rng, RECENT, LAST, PAPERS - old)])
    codes = np.array([f"cs.{c}" for c in ("LG", "CV", "CL", "AI", "RO", "CR", "DS", "IR", "SE", "NI", "HC", "DB")])
    weights = 1 / np.arange(1, len(codes) + 1)
    category = rng.choice(codes, PAPERS, p=weights / weights.sum())
    papers = pd.DataFrame({"paper_id": ids, "published": published.astype("datetime64[D]"), "category": category})
    # A person is a name plus a circle of co-authors of their own: the common names belong to many
    # people, each publishing with their own circle, so they fall into many co-author groups.
    people = 40_000
    person_name = np.array([f"Author {i}" for i in range(people)], dtype=object)
    person_name[: len(COMMON_NAMES) * 60] = np.repeat(COMMON_NAMES, 60)
    first_author = rng.integers(0, people, PAPERS)
    circle = (first_author[:, None] + rng.integers(1, 6, (PAPERS, 2)) * 7_919) % people
    links = pd.DataFrame(
        {
            "paper_id": np.repeat(ids, 3),
            "position": np.tile([1, 2, 3], PAPERS),
            "person": np.column_stack([first_author, circle]).ravel(),
        }
    )
    links["author_id"] = person_name[links["person"]]
    links = links.drop_duplicates(["paper_id", "author_id"])
    names = pd.unique(links["author_id"])
    authors = pd.DataFrame({"author_id": names, "name": names})
    slugs = np.array(["mit", "stanford", "tsinghua", "oxford", "eth", "cmu", "kaist", "epfl"])
    with_org = ids[rng.random(PAPERS) < 0.2]
    paper_organizations = pd.DataFrame(
        {"paper_id": with_org, "position": 1, "org_id": rng.choice(slugs, len(with_org))}
    )
    return {
        "papers": papers,
        "authors": authors,
        "paper_authors": links[["paper_id", "position", "author_id"]],
        "organizations": pd.DataFrame({"org_id": slugs, "name": [s.upper() for s in slugs]}),
        "paper_organizations": paper_organizations,
        "categories": pd.DataFrame({"category": codes, "name": [f"Computer Science ({c})" for c in codes]}),
        "rejects": pd.DataFrame(
            {"source_file": "listing_2026-11-26.txt", "source_line": [4, 90], "rule": "stray_lines", "reason": "x"}
        ),
        "changes": pd.DataFrame({"paper_id": ids, "change": "added"}),
    }


def _filler(field: pa.Field, rows: int) -> pa.Array:
    """A column the generator does not make: null where the contract allows it, else a constant of its type."""
    if field.nullable:
        return pa.nulls(rows, field.type)
    value = {"string": "", "bool": False, "int64": 0, "date32[day]": FIRST}[str(field.type)]
    return pa.array([value] * rows, field.type)


def write_large_version(folder: Path, tables: dict[str, pd.DataFrame]) -> dict[str, list[Part]]:
    """The tables as one Parquet file each in `folder` with every column of the contract (those the
    generator does not make filled by `_filler`), as the parts of one generation, by table name."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = {}
    for name in MODELS:
        frame, schema = tables[name], arrow_schema(name)
        columns = [
            pa.array(frame[f.name], f.type, from_pandas=True) if f.name in frame else _filler(f, len(frame))
            for f in schema
        ]
        path = folder / f"{name}.parquet"
        pq.write_table(pa.Table.from_arrays(columns, schema=schema), path)
        parts[name] = [Part(path, 1)]
    return parts
