"""A hand-off: one version as a self-contained folder (a Parquet file per table, manifest, contract)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.errors import StoreError
from pipeline.published.layout import CONTRACT_FILES, MANIFEST, REPORT_FILE
from pipeline.published.manifest import manifest_bytes
from pipeline.published.publish import table_specs
from pipeline.published.store import Store
from pipeline.published.verify import table_batches, version_parts
from pipeline.published.writer import no_check, write_generation
from pipeline.storage import Location, open_storage
from schemas.tables import MODELS

# The manifest's entries that describe the version (its tables' files are listed anew).
_KEPT = ("id", "parent_id", "created_at", "pipeline_version", "inputs", "skipped_inputs", "records", "rejects",
         "code_fingerprint", "fingerprint", "schema_fingerprint")  # fmt: skip


def export_version(store: Store, version_id: str, target: Location) -> tuple[str, dict[str, int]]:
    """Write version `version_id` of `store` into `target` (a folder, or an s3:// prefix, empty or
    new) as one file per table, each holding the table's rows, with the version's report,
    contract and a manifest of those files (written last). Every file read is checked against
    the store's manifest first. Returns where it went and the rows of each table."""
    out = open_storage(target)
    if out.list().objects:
        raise StoreError(f"{out.url} is not empty: export a version into a new folder")
    manifest = store.manifest(version_id)
    parts = version_parts(store, manifest)
    specs = table_specs()
    files: dict[str, Any] = {}
    rows: dict[str, int] = {}
    with out.workspace() as work:
        for name in MODELS:
            spec = dataclasses.replace(
                specs[name], footer={**specs[name].footer, "paper_listings.version_id": version_id}
            )
            written, count, _ = write_generation(spec, table_batches(name, parts[name]), work, no_check,
                                                 target_bytes=1 << 62, empty_file=True)  # fmt: skip
            (done,) = written
            out.put_file(f"{name}.parquet", done.path)
            files[f"{name}.parquet"] = {"sha256": done.sha256, "bytes": done.bytes}
            rows[name] = count
    for relative in (*CONTRACT_FILES, REPORT_FILE):
        if relative in manifest.own:
            data = store.own_file(version_id, relative)
            out.put(relative, data)
            files[relative] = manifest.own[relative]
    document = {key: manifest.document[key] for key in _KEPT if key in manifest.document}
    document.update({"layout": 1, "row_counts": rows, "files": files})
    if not out.put_if_absent(MANIFEST, manifest_bytes(document)):
        raise StoreError(f"{out.url} was written to by another export meanwhile: its manifest is not this one's")
    return out.url, rows
