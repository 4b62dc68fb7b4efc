"""`validate`: everything wrong with a version folder, for the receiving side of a hand-off."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.assembled.keys import file_key_failures
from pipeline.errors import UnreadableInputError, VersionDamagedError
from pipeline.published.layout import CONTRACT_FILES, MANIFEST, VERSION_FILES
from pipeline.published.manifest import read_manifest
from pipeline.published.writer import decoded
from pipeline.settings import METADATA_PREFIX
from pipeline.storage.local import file_digest
from schemas import MODELS, arrow_schema
from schemas.contract import contract_json, data_dictionary, schema_fingerprint, table_contract_json
from schemas.tables import plain_schema
from schemas.validate import REPORT_COLUMNS, batch_failures, report_row


def _integrity_failures(path: Path, manifest: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Missing, linked, resized or altered files, against the manifest's sha256 and sizes."""
    failures = []
    listed = manifest.get("files") if manifest is not None else None
    # Only the version's own files are opened, whatever else a damaged manifest names.
    for relative in sorted(VERSION_FILES):
        file = path / relative
        try:
            if file.is_symlink():
                failures.append(report_row(relative, "regular_file", "a link, not a file"))
            elif not file.is_file():
                failures.append(report_row(relative, "file_present", str(file)))
            elif listed is not None:
                want = listed.get(relative)
                got = file_digest(file)
                if not isinstance(want, dict):
                    failures.append(report_row(relative, "listed_in_manifest", "the manifest has no sha256 for it"))
                elif got != want:
                    case = f"{got['bytes']} bytes (manifest: {want.get('bytes')}); content differs from its sha256"
                    failures.append(report_row(relative, "sha256", case))
        except OSError as err:
            failures.append(report_row(relative, "readable", err.strerror or str(err)))
    return failures


def _contract_failures(path: Path) -> list[dict[str, Any]]:
    """Contract files that are not the contract this pipeline publishes (their sha256 may match
    a manifest that was rewritten with them)."""
    failures = []
    for relative, current in zip(CONTRACT_FILES, (contract_json(), data_dictionary()), strict=True):
        try:
            text = (path / relative).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # reported as missing or unreadable by the integrity check
        if text != current:
            failures.append(report_row(relative, "contract_current", "differs from this pipeline's contract"))
    return failures


def _type_failures(name: str, file_schema: pa.Schema) -> list[dict[str, Any]]:
    failures = []
    schema = plain_schema(file_schema)
    for field in arrow_schema(name):
        if field.name not in schema.names:
            failures.append(report_row(name, "column_present", column=field.name))
        elif not schema.field(field.name).type.equals(field.type):
            failures.append(
                report_row(name, f"arrow_type({field.type})", str(schema.field(field.name).type), column=field.name)
            )
    return failures


_CHECK_BATCH_ROWS = 16_384


def _table_failures(name: str, file: Path) -> tuple[int | None, list[dict[str, Any]], list[pd.DataFrame]]:
    """One table of a version folder read batch by batch (never whole): its rows (None when it
    cannot be read through), what keeps it from being read, and what its model rejects."""
    try:
        parquet = pq.ParquetFile(file, page_checksum_verification=True)
    except (OSError, pa.ArrowException, ValueError) as err:
        return None, [report_row(name, "readable", f"{file} cannot be read: {str(err)[:300]}")], []
    with parquet:
        typed = _type_failures(name, parquet.schema_arrow)
        if typed:
            return None, typed, []
        rows, found = 0, []
        try:
            for batch in parquet.iter_batches(batch_size=_CHECK_BATCH_ROWS):
                batch.validate(full=True)  # e.g. strings that are not UTF-8
                failures = batch_failures(name, decoded(batch), rows)
                if len(failures):
                    found.append(failures)
                rows += batch.num_rows
        except (OSError, pa.ArrowException, ValueError, OverflowError) as err:  # a date32 past year 9999, say
            return None, [report_row(name, "readable", f"{file} cannot be read: {str(err)[:300]}")], found
    return rows, [], found


def _footer_failures(name: str, file: Path, manifest: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """What a table file's footer says about itself that its manifest does not (`footer_metadata`)."""
    try:
        stored = pq.read_metadata(file).metadata or {}
    except (OSError, pa.ArrowException, ValueError):
        return []  # unreadable: `_table_failures` says so
    said = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in stored.items()}
    expected = {METADATA_PREFIX + "table": name, METADATA_PREFIX + "contract": table_contract_json(name)}
    if manifest is not None:
        expected[METADATA_PREFIX + "version_id"] = str(manifest.get("id"))
        expected[METADATA_PREFIX + "schema_fingerprint"] = str(manifest.get("schema_fingerprint"))
    return [
        report_row(name, f"footer({key}={value[:40]})", said.get(key, "missing")[:80])
        for key, value in expected.items()
        if said.get(key) != value
    ]


def check_version_folder(path: Path) -> pd.DataFrame:
    """Everything wrong with a version folder, for the receiving side of a hand-off.

    Requires the manifest and the contract; checks every file's sha256 and size against the
    manifest, that every table reads with its page checksums and has the contract's Arrow
    types, that its footer names this version, table, contract and schema fingerprint, that the
    tables pass the pandera models (batch by batch, so that memory does not grow with the
    version), keys and foreign keys, that row counts match the manifest and that the
    contract is this pipeline's. Returns the failures in the report format of `schemas.validate`
    (empty when the folder conforms); never raises on damaged input.
    """
    failures: list[dict[str, Any]] = []
    manifest: dict[str, Any] | None = None
    if not (path / MANIFEST).is_file():
        failures.append(report_row(MANIFEST, "file_present", str(path / MANIFEST)))
    else:
        try:
            manifest = read_manifest(path)
        except VersionDamagedError as err:
            failures.append(report_row(MANIFEST, "readable", str(err)))
    failures += _integrity_failures(path, manifest)
    # A file that is there is still checked when its sha256 differs: the report then says what changed.
    unusable = {f["table"] for f in failures if f["check"] in ("file_present", "regular_file")}
    rows: dict[str, int] = {}
    model_failures: list[pd.DataFrame] = []
    for name in MODELS:
        if f"{name}.parquet" in unusable:
            continue
        counted, problems, found = _table_failures(name, path / f"{name}.parquet")
        failures += problems or _footer_failures(name, path / f"{name}.parquet", manifest)
        model_failures += found
        if counted is not None:
            rows[name] = counted
    failures += _contract_failures(path)
    report = pd.concat([pd.DataFrame(failures, columns=REPORT_COLUMNS), *model_failures], ignore_index=True)
    if len(rows) == len(MODELS):
        try:
            keys = file_key_failures({name: path / f"{name}.parquet" for name in MODELS})
        except UnreadableInputError as err:
            keys = pd.DataFrame([report_row("keys", "readable", str(err))], columns=REPORT_COLUMNS)
        report = pd.concat([report, keys], ignore_index=True)
    extra = []
    if manifest is not None:
        counts = manifest["row_counts"]
        for name, counted in rows.items():
            if counts.get(name) != counted:
                extra.append(report_row(name, f"manifest_row_count({counts.get(name)})", str(counted)))
        if manifest.get("schema_fingerprint") != schema_fingerprint():
            extra.append(report_row(MANIFEST, "schema_fingerprint", "the version was published under another contract"))
    if extra:
        report = pd.concat([report, pd.DataFrame(extra, columns=REPORT_COLUMNS)], ignore_index=True)
    return report
