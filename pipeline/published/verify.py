"""Verified reads of a version's files: each checked against its manifest's sha256, page checksums and types."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import VersionDamagedError
from pipeline.published.manifest import read_manifest
from pipeline.storage.local import bytes_digest, file_digest
from schemas import MODELS, arrow_schema
from schemas.tables import plain_schema


def _read_parquet(file: Path, schema: pa.Schema | None = None, expected: object = None) -> pa.Table:
    """A Parquet file, read once: equal to its `expected` digest (`file_digest`'s shape) when one
    is given, every page checksum verified, every string valid UTF-8, of `schema` when one is
    given. VersionDamagedError when it is missing, a link, damaged, edited or of another shape."""
    try:
        if file.is_symlink():
            raise VersionDamagedError(f"{file} is a link, not a file")
        data = file.read_bytes()
    except OSError as err:
        raise VersionDamagedError(f"{file} cannot be read: {err.strerror}") from None
    if expected is not None and bytes_digest(data) != expected:
        raise VersionDamagedError(f"{file} differs from the sha256 in its manifest: damaged or edited")
    try:
        table = pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
        table.validate(full=True)
    except (OSError, pa.ArrowException, ValueError) as err:
        raise VersionDamagedError(f"{file} cannot be read: {str(err)[:300]}") from None
    if schema is not None and not plain_schema(table.schema).equals(schema):
        raise VersionDamagedError(f"{file} does not have the expected columns and types")
    return table


def _to_pandas(file: Path, table: pa.Table) -> pd.DataFrame:
    try:
        return table.to_pandas(date_as_object=True)
    except (pa.ArrowException, ValueError, OverflowError) as err:  # e.g. a date32 past year 9999
        raise VersionDamagedError(f"{file} holds values pandas cannot read: {str(err)[:200]}") from None


def read_tables(path: Path, tables: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Read a version folder's tables into pandas (dates stay `datetime.date`), each verified
    against the manifest's sha256 and size, its page checksums and the contract's types."""
    names = list(tables) if tables is not None else list(MODELS)
    listed = read_manifest(path)["files"]
    frames = {}
    for name in names:
        file = path / f"{name}.parquet"
        if file.name not in listed:
            raise VersionDamagedError(f"{file} has no sha256 in its manifest")
        frames[name] = _to_pandas(file, _read_parquet(file, arrow_schema(name), listed[file.name]))
    return frames


def verified_files(path: Path, tables: Sequence[str], check_types: bool = True) -> dict[str, Path]:
    """The Parquet files of some tables of a version folder, for a reader that scans them itself
    (DuckDB): each a regular file equal to the manifest's sha256 (read in blocks, never whole),
    with the contract's types in its footer (unless `check_types` is False: a version written
    under an older contract); VersionDamagedError otherwise."""
    listed = read_manifest(path)["files"]
    files = {}
    for name in tables:
        file = path / f"{name}.parquet"
        try:
            if file.is_symlink() or not file.is_file():
                raise VersionDamagedError(f"{file} is missing or not a regular file")
            if file_digest(file) != listed.get(file.name):
                raise VersionDamagedError(f"{file} differs from the sha256 in its manifest: damaged or edited")
            if check_types and not plain_schema(pq.read_schema(file)).equals(arrow_schema(name)):
                raise VersionDamagedError(f"{file} does not have the contract's columns and types")
        except (OSError, pa.ArrowException) as err:
            raise VersionDamagedError(f"{file} cannot be read: {str(err)[:200]}") from None
        files[name] = file
    return files
