"""The rejects of a refused run, written where the operator reads them (OUT/rejected/<run>/), never as a version."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipeline.published.layout import REJECTED
from pipeline.published.manifest import write_manifest
from pipeline.published.writer import conform
from pipeline.settings import PARQUET_OPTIONS
from pipeline.storage.local import move_into_place, remove, tmp_name, write_error
from schemas import arrow_schema
from schemas.contract import schema_fingerprint


def write_rejected(out_dir: Path, rejects: Iterable[pa.RecordBatch], manifest: Mapping[str, Any]) -> Path:
    """Write the rejects of a run that was refused, outside any version; return the folder.

    ``OUT/rejected/<fingerprint>/`` holds rejects.parquet, rejects.csv and the run's manifest.
    """
    folder = out_dir / REJECTED / str(manifest["fingerprint"])[:16]
    staging = folder.with_name(tmp_name(folder.name))
    schema = arrow_schema("rejects")
    try:
        staging.mkdir(parents=True)
        with (
            pq.ParquetWriter(staging / "rejects.parquet", schema, **PARQUET_OPTIONS) as parquet,
            pa_csv.CSVWriter(staging / "rejects.csv", schema) as csv,
        ):
            for raw in rejects:
                batch = conform(raw, schema)
                parquet.write_batch(batch)
                csv.write_batch(batch)
        write_manifest(staging, {**manifest, "schema_fingerprint": schema_fingerprint()})
        move_into_place(staging, folder)  # the same fingerprint: the same rejects
    except OSError as err:
        remove(staging)
        raise write_error(staging, err) from None
    return folder
