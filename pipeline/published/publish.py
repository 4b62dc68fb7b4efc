"""A new version's tables composed: the parent's files shared, the change added as a new generation."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import pandas as pd
import pyarrow as pa

from pipeline.assembled.batches import read_assembly
from pipeline.assembled.captures import Assembled, TableRows
from pipeline.assembled.generations import REPLACED_BY, live_sql
from pipeline.assembled.index import INDEX_ORDER, INDEX_SCHEMAS, index_recipe
from pipeline.db import connect, reading, sql_text
from pipeline.errors import DatasetInvalidError
from pipeline.published.compaction import compaction_runs
from pipeline.published.layout import DATA, INDEX
from pipeline.published.manifest import DataFile, Manifest
from pipeline.published.transaction import VersionTransaction
from pipeline.published.writer import BatchCheck, TableSpec, footer, no_check
from pipeline.settings import READER_MEMORY
from schemas.contract import schema_fingerprint, table_contract_json
from schemas.tables import MODELS, SORTED_BY, arrow_schema, published_schema

_READ_ROWS = 16_384


def table_specs() -> dict[str, TableSpec]:
    """How each table of the contract is written (made once: pandera's contract export is not
    safe across threads)."""
    fingerprint = schema_fingerprint()
    return {
        name: TableSpec(
            name,
            DATA,
            arrow_schema(name),
            published_schema(name),
            REPLACED_BY[name],
            SORTED_BY.get(name),
            footer({"table": name, "schema_fingerprint": fingerprint, "contract": table_contract_json(name)}),
        )
        for name in MODELS
    }


def index_specs() -> dict[str, TableSpec]:
    """How each index is written."""
    recipe = index_recipe()
    return {
        name: TableSpec(
            name,
            INDEX,
            schema,
            schema,
            REPLACED_BY[name],
            INDEX_ORDER[name],
            footer({"table": name, "index_recipe": recipe}),
        )
        for name, schema in INDEX_SCHEMAS.items()
    }


def write_version(tx: VersionTransaction, parent: Manifest | None, built: Assembled, check: BatchCheck) -> None:
    """Every table and index of the new version in `tx`: from the rows `built` writes, the files
    of `parent` they do not replace, and any compaction due. DatasetInvalidError naming every
    row the checks refuse. Papers, by far the largest, are written on a thread of their own."""
    with read_assembly(built.database) if built.database is not None else nullcontext():  # each reader joins it
        _write_version(tx, parent, built, check)


def _write_version(tx: VersionTransaction, parent: Manifest | None, built: Assembled, check: BatchCheck) -> None:
    tables, indexes = table_specs(), index_specs()

    def table(name: str) -> list[pd.DataFrame]:
        shared = parent.tables.get(name, ()) if parent is not None else ()
        return compose(tx, tables[name], shared, built.tables[name], built.row_counts[name], check)

    with ThreadPoolExecutor(1) as pool:
        papers = pool.submit(table, "papers")
        failures = [f for name in MODELS if name != "papers" for f in table(name)]
        failures += papers.result()
    if failures:
        raise DatasetInvalidError(pd.concat(failures, ignore_index=True))
    if not built.index:
        return  # a version without indexes: the next refresh assembles every capture
    for name, spec in indexes.items():
        shared = parent.index.get(name, ()) if parent is not None else ()
        compose(tx, spec, shared, built.index[name], built.index_counts[name], no_check)
    tx.index_rows.update(built.index_counts)
    tx.index_recipe = index_recipe()


def compose(
    tx: VersionTransaction,
    spec: TableSpec,
    shared: Sequence[DataFile],
    rows: TableRows,
    live: int,
    check: BatchCheck,
) -> list[pd.DataFrame]:
    """One table of the new version: its rows written (whole, or as a new generation after the
    parent's files `shared`), rows the change drops removed from the files that hold them, and
    the compactions its files call for; the failures the checks found (nothing set then)."""
    if rows.whole or not shared:
        files, _, failures = tx.write(spec, rows.rows(), check, empty_file=True, share=shared)
        if failures:
            return failures
    else:
        tx.store.check_stored(shared)  # shared unread: present, and of their size
        files = list(shared)
        if rows.count:
            added, _, failures = tx.write(spec, rows.rows(), check)
            if failures:
                return failures
            files += added
        if rows.dropped is not None and rows.dropped_count:
            files = _without_keys(tx, spec, files, shared, rows.dropped)
    files = _compacted(tx, spec, files, live)
    tx.set_table(spec, files, live)
    return []


def _rows(sql: str) -> Iterator[pa.RecordBatch]:
    with reading(), connect(memory_limit=READER_MEMORY, threads=1) as con:
        yield from con.sql(sql).to_arrow_reader(_READ_ROWS)


def _part_of(file: DataFile) -> int:
    return int(file.key.rsplit("/", 1)[1].split("-")[1])


def _without_keys(
    tx: VersionTransaction, spec: TableSpec, files: list[DataFile], shared: Sequence[DataFile],
    dropped: Callable[[], Any],
) -> list[DataFile]:  # fmt: skip
    """`files` with the parent's rows of the `dropped` keys removed: each file of the parent that
    holds one rewritten without them (and without rows newer ones supersede), in its generation."""
    keys = pa.Table.from_batches(list(dropped()))
    parts = tx.parts(files)
    result = list(files)
    with reading(), connect(memory_limit=READER_MEMORY, threads=1) as con:
        con.register("dropped_keys", keys)
        columns = ", ".join(f'"{c}"' for c in spec.key)
        holding = []
        for file, part in zip(files, parts, strict=True):
            if (
                file in shared
                and con.execute(
                    f"SELECT 1 FROM read_parquet({sql_text(str(part.path))}) "
                    f"SEMI JOIN dropped_keys USING ({columns}) LIMIT 1"
                ).fetchall()
            ):
                holding.append(file)
        con.unregister("dropped_keys")
    for file in holding:
        index = result.index(file)
        newer = [p for f, p in zip(files, parts, strict=True) if f.generation > file.generation]
        own = parts[files.index(file)]
        sql = live_sql([own, *newer], spec.key, ordered=True, only={file.generation})
        sql = f"SELECT * FROM ({sql}) ANTI JOIN dropped_keys USING ({columns})"

        def batches(sql: str = sql) -> Iterator[pa.RecordBatch]:
            with reading(), connect(memory_limit=READER_MEMORY, threads=1) as con:
                con.register("dropped_keys", keys)
                yield from con.sql(sql).to_arrow_reader(_READ_ROWS)

        written, _, _ = tx.write(spec, batches(), no_check, generation=file.generation, first_part=_part_of(file))
        result[index : index + 1] = written
    return result


def _compacted(tx: VersionTransaction, spec: TableSpec, files: list[DataFile], live: int) -> list[DataFile]:
    """`files` with each run `compaction_runs` picks rewritten as the generation of its first
    file, holding only its rows that no newer generation supersedes."""
    result = list(files)
    for run in compaction_runs(files, live):
        start = result.index(run.files[0])
        stop = result.index(run.files[-1]) + 1
        newer = result[stop:]
        parts = tx.parts([*run.files, *newer])
        sql = live_sql(parts, spec.key, ordered=True, only={f.generation for f in run.files})
        written, _, _ = tx.write(spec, _rows(sql), no_check, generation=run.generation)
        result[start:stop] = written
    if not result:  # every row superseded: a table still lists a file
        written, _, _ = tx.write(spec, iter(()), no_check, empty_file=True)
        result = written
    return result
