"""Test helpers: listings as text → staged parts → assembled tables (pandas), and frames → a version."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.assembled.batches import papers_batches, read_assembly, relation_batches
from pipeline.assembled.build import build_version
from pipeline.assembled.captures import Assembled, CaptureFiles, ParentVersion, TableRows
from pipeline.assembled.generations import Part
from pipeline.parse.reference import load_reference
from pipeline.parse.tables import CHANGE_INPUTS, STAGED_TABLES, chunk_tables
from pipeline.published import PublishOutcome, Store, VersionTransaction, read_tables, write_version
from pipeline.published.layout import REPORT_FILE
from pipeline.reported.version_report import version_report_html
from pipeline.staged.store import staged_part_name, write_staged_part
from schemas.tables import MODELS, arrow_schema
from schemas.validate import batch_failures

_numbers = itertools.count()


def stage_text(folder: Path, name: str, capture: date, text: str) -> CaptureFiles:
    """One listing's text parsed into a staged folder (one part), as assembly reads it."""
    folder.mkdir(parents=True)
    write_staged_part(folder, 0, chunk_tables(text, capture, load_reference()))
    key = f"{name}-{folder.name}"  # a key of its own per staged folder, as the staged layer gives
    return CaptureFiles(name, capture, key, {t: [folder / staged_part_name(t, 0)] for t in STAGED_TABLES})


def rows_frame(database: Path, table: str) -> pd.DataFrame:
    """The rows an assembly writes of one table, as pandas (dates as `datetime.date`)."""
    reader = papers_batches(database) if table == "papers" else relation_batches(database, table)
    batches = [b.cast(arrow_schema(table)) for b in reader]
    return pa.Table.from_batches(batches, schema=arrow_schema(table)).to_pandas(date_as_object=True)


def write_parent(folder: Path, tables: Mapping[str, pd.DataFrame]) -> ParentVersion:
    """A parent version of the tables changes are computed from, written as one file each, with
    no index (it is compared by its tables)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in CHANGE_INPUTS:
        files[name] = [Part(folder / f"{name}.parquet", 1)]
        table = pa.Table.from_pandas(tables[name], schema=arrow_schema(name), preserve_index=False)
        pq.write_table(table, files[name][0].path)
    counts = {name: len(frame) for name, frame in tables.items()}
    return ParentVersion("000001", {}, lambda names: {n: files[n] for n in names}, counts, {})


def assembled(
    work: Path, listings: Sequence[tuple[str, date, str]], parent: Mapping[str, pd.DataFrame] | None = None
) -> dict[str, pd.DataFrame]:
    """Every table of the version that `listings` (name, capture date, text) make, as pandas;
    changes against `parent` (tables as this returns them) when given."""
    run = work / f"assembly-{next(_numbers)}"
    captures = [stage_text(run / f"capture-{i}", name, day, text) for i, (name, day, text) in enumerate(listings)]
    parent_version = write_parent(run / "parent", parent) if parent is not None else None
    database = run / "assembly.duckdb"
    build_version(database, captures, load_reference(), parent_version)
    with read_assembly(database):  # held open: each table's reader joins it
        return {name: rows_frame(database, name) for name in MODELS}


def frame_batches(table: str, frame: pd.DataFrame) -> list[pa.RecordBatch]:
    """A pandas table as the batches a `VersionTransaction` writes."""
    return pa.Table.from_pandas(frame, schema=arrow_schema(table), preserve_index=False).to_batches()


def publish_frames(
    out: Path | str, tables: Mapping[str, pd.DataFrame], manifest: Mapping[str, Any], created_at: datetime | None = None
) -> PublishOutcome:
    """Publish pandas tables as a new version (the child of latest, written whole, with no index),
    every batch checked and the report written as the flow's publish task does."""
    store = Store.open(out)
    parent_id = store.latest_id()
    parent = store.manifest(parent_id) if parent_id is not None else None
    rows = {name: TableRows(partial(frame_batches, name, tables[name]), len(tables[name]), whole=True)
            for name in MODELS}  # fmt: skip
    counts = {name: len(tables[name]) for name in MODELS}
    built = Assembled(None, False, rows, {}, counts, {}, {}, 0)
    with store.lock(30) as lease, VersionTransaction(store, parent_id, lease) as tx:
        write_version(tx, parent, built, batch_failures)
        parts = {name: tx.parts(files) for name, files in tx.tables.items()}
        with store.storage.workspace() as scratch:
            html = version_report_html(parts, tx.version_id, parent_id, tx.row_counts, scratch)
        tx.add_file(REPORT_FILE, html)
        return tx.commit(manifest, created_at or datetime(2026, 11, 26, tzinfo=UTC))


Tables = Mapping[str, pd.DataFrame]


def without_paper(tables: Tables, paper_id: str) -> dict[str, pd.DataFrame]:
    """`tables` with one paper and its author and organisation rows removed."""
    kept = dict(tables)
    for name in ("papers", "paper_authors", "paper_organizations"):
        frame = tables[name]
        kept[name] = frame[frame["paper_id"] != paper_id].reset_index(drop=True)
    return kept


def with_paper_value(tables: Tables, row: int, column: str, value: object) -> dict[str, pd.DataFrame]:
    """`tables` with one value of one papers row changed."""
    papers = tables["papers"].copy()
    papers.loc[row, column] = value
    return {**tables, "papers": papers}


def successive_editions(first: Tables) -> list[dict[str, pd.DataFrame]]:
    """Four successive states of a dataset from its `first` tables (validated): each has one paper
    less than the one before and one value edited; the third has an empty changes table."""
    ids = first["papers"]["paper_id"]
    second = with_paper_value(without_paper(first, ids[0]), 0, "score", 12.5)
    third = with_paper_value(without_paper(second, ids[2]), 1, "title", "A Title Edited Since")
    third["changes"] = third["changes"].iloc[0:0]  # an empty table among non-empty versions of it
    fourth = with_paper_value(without_paper(third, ids[4]), 2, "score", 77.0)
    return [dict(first), second, third, fourth]


def version_tables(folder: Path | str, tables: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """The tables of the version whose folder is `folder` (``OUT/versions/<id>`` or ``OUT/latest``,
    a path or a URL), each verified, as `read_tables` gives them."""
    text = str(folder).rstrip("/")
    root, _, name = text.rpartition("/")
    if name == "latest":
        store = Store.open(root)
        return read_tables(store, store.resolve(None), tables)
    return read_tables(Store.open(root.rpartition("/")[0]), name, tables)
