"""The rejects of a refused run, written where the operator reads them (``rejected/<run>/``), never as a version."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipeline.published.layout import MANIFEST, REJECTED
from pipeline.published.manifest import manifest_bytes
from pipeline.published.store import Store
from pipeline.published.writer import conform
from pipeline.settings import PARQUET_OPTIONS
from pipeline.storage.files import write_error
from schemas.contract import schema_fingerprint
from schemas.tables import arrow_schema


def write_rejected(store: Store, rejects: Iterable[pa.RecordBatch], manifest: Mapping[str, Any]) -> str:
    """Write the rejects of a run that was refused, outside any version; return where.

    ``rejected/<fingerprint>/`` holds rejects.parquet, rejects.csv and the run's manifest (last:
    a folder with its manifest is whole; the same fingerprint gives the same rejects)."""
    prefix = f"{REJECTED}/{str(manifest['fingerprint'])[:16]}"
    schema = arrow_schema("rejects")
    with store.storage.workspace() as work:
        try:
            with (
                pq.ParquetWriter(work / "rejects.parquet", schema, **PARQUET_OPTIONS) as parquet,
                pa_csv.CSVWriter(work / "rejects.csv", schema) as csv,
            ):
                for raw in rejects:
                    batch = conform(raw, schema)
                    parquet.write_batch(batch)
                    csv.write_batch(batch)
        except OSError as err:
            raise write_error(work, err) from None
        for name in ("rejects.parquet", "rejects.csv"):
            store.storage.put_file(f"{prefix}/{name}", work / name)
    store.storage.put(f"{prefix}/{MANIFEST}", manifest_bytes({**manifest, "schema_fingerprint": schema_fingerprint()}))
    return store.storage.where(prefix)
