"""The paper index beside the latest version (OUT/index/<id>.parquet): what the next refresh reuses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.published.layout import INDEX
from pipeline.published.writer import Batches, conform
from pipeline.settings import PARQUET_OPTIONS
from pipeline.storage.local import TMP_PREFIX, fsync_file, remove


@dataclass(frozen=True, slots=True)
class IndexSource:
    """The paper index of a new version: its batches, schema, and footer metadata for the sha256
    of the papers file it describes."""

    batches: Batches
    schema: pa.Schema
    metadata: Callable[[str], dict[bytes, bytes]]


def open_index(source: IndexSource, path: Path) -> pq.ParquetWriter:
    """The paper index of a version written into `path` but left open: its footer is to name the
    papers file it describes (`_close_index`), which may still be being written."""
    # Hashes never repeat: a dictionary would be tried on every page, and dropped.
    writer = pq.ParquetWriter(path, source.schema, **PARQUET_OPTIONS, use_dictionary=False)
    try:
        for batch in source.batches():
            writer.write_batch(conform(batch, source.schema))
    except BaseException:
        writer.close()
        raise
    return writer


def close_index(writer: pq.ParquetWriter, metadata: Mapping[bytes, bytes], path: Path) -> None:
    writer.add_key_value_metadata(dict(metadata))
    writer.close()
    fsync_file(path)


def index_path(out_dir: Path, version_id: str) -> Path:
    """Where the paper index of a version is (or would be)."""
    return out_dir / INDEX / f"{version_id}.parquet"


def paper_index(out_dir: Path, version_id: str) -> Path | None:
    """The paper index of a version when there is one (a regular file), for assembly to check."""
    path = index_path(out_dir, version_id)
    return path if path.is_file() and not path.is_symlink() else None


def place_index(out_dir: Path, written: Path, version_id: str) -> None:
    """Rename a written index into place and drop every other: only latest's is ever read. An
    index that cannot be placed costs the next run time, never data: it is dropped."""
    try:
        written.rename(index_path(out_dir, version_id))
        for other in (out_dir / INDEX).iterdir():
            if other.name != f"{version_id}.parquet" and not other.name.startswith(TMP_PREFIX):
                remove(other)
    except OSError:
        remove(written)
