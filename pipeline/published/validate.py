"""`validate`: everything wrong with a version, in a store or handed over as a folder, for the receiving side."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.assembled.generations import Part
from pipeline.assembled.keys import version_key_failures
from pipeline.errors import StoreError, UnreadableInputError, VersionDamagedError
from pipeline.published.layout import CONTRACT_FILES, LATEST, MANIFEST, VERSION_ID, version_key
from pipeline.published.manifest import DataFile, Manifest, parse_manifest
from pipeline.published.store import Store
from pipeline.published.verify import table_batches
from pipeline.published.writer import decoded
from pipeline.settings import METADATA_PREFIX
from pipeline.storage import Location, Storage, open_storage
from pipeline.storage.files import file_digest
from pipeline.storage.verified import plain_path
from schemas.contract import contract_json, data_dictionary, schema_fingerprint, table_contract_json
from schemas.tables import MODELS, arrow_schema, plain_schema
from schemas.validate import REPORT_COLUMNS, batch_failures, report_row

_CHECK_BATCH_ROWS = 16_384
# Fetches a listed object (its key, sha256 and size) as a local file, with what is wrong with it
# (None when it is the one listed); VersionDamagedError when there is no file to read.
Fetch = Callable[[str, str, int], tuple[Path, str | None]]


def check_location(location: Location) -> pd.DataFrame:
    """Everything wrong with the version at `location`: a version's folder in a store
    (``OUT/versions/<id>``, or ``OUT/latest``), or a folder a version was handed over in (written
    by `export version`, or any version of the first layout), on disk or on object storage.
    Returns the failures in the report format of `schemas.validate` (empty when it conforms);
    StoreError when nothing there can be read at all."""
    storage = open_storage(location)
    if storage.name == LATEST:  # the store's pointer (a link on disk, nothing on object storage)
        store = Store(storage.parent())
        return check_version(store, store.resolve(None))
    data = storage.get(MANIFEST)
    if data is None:
        if storage.head(f"{CONTRACT_FILES[0]}") is None and not storage.list().objects:
            raise StoreError(f"{storage.url} holds no version (no {MANIFEST}, nothing else)")
        return pd.DataFrame([report_row(MANIFEST, "file_present", storage.where(MANIFEST))], columns=REPORT_COLUMNS)
    try:
        manifest = parse_manifest(data, None, folder="")
    except VersionDamagedError as err:
        return pd.DataFrame([report_row(MANIFEST, "readable", str(err))], columns=REPORT_COLUMNS)
    if manifest.layout == 1:
        with tempfile.TemporaryDirectory(prefix="paper-listings-validate-") as work:
            return check_manifest(manifest, _fetcher(storage, Path(work)))
    if not VERSION_ID.fullmatch(storage.name):
        return pd.DataFrame([report_row(MANIFEST, "in_its_store", "a version of a store is checked in its store "
                                        f"({storage.url} is not versions/<id> of one); hand it over with "
                                        "`export version`")], columns=REPORT_COLUMNS)  # fmt: skip
    store = Store(storage.parent().parent())
    return check_version(store, storage.name)


def check_version(store: Store, version_id: str) -> pd.DataFrame:
    """Everything wrong with a version of `store` (`check_manifest`)."""
    try:
        manifest = store.manifest(version_id)
    except VersionDamagedError as err:
        return pd.DataFrame([report_row(MANIFEST, "readable", str(err))], columns=REPORT_COLUMNS)
    with tempfile.TemporaryDirectory(prefix="paper-listings-validate-") as work:
        return check_manifest(manifest, _fetcher(store.storage, Path(work)))


def _fetcher(storage: Storage, work: Path) -> Fetch:
    """Each listed object as a local file (downloaded into `work` where the storage is not a local
    disk, copied there where DuckDB would misread its path), and how it differs from its listing."""

    def fetch(key: str, sha256: str, size: int) -> tuple[Path, str | None]:
        target = work / f"{len(list(work.iterdir()))}-{sha256[:16]}"
        try:
            path = storage.local_file(key, target)
        except FileNotFoundError:
            raise VersionDamagedError(f"{storage.where(key)} is missing") from None
        except OSError as err:
            raise VersionDamagedError(f"{storage.where(key)} cannot be read: {err.strerror or err}") from None
        if not plain_path(path):
            shutil.copyfile(path, target)
            path = target
        got = file_digest(path)
        if got != {"sha256": sha256, "bytes": size}:
            return path, f"{got['bytes']} bytes (manifest: {size}); content differs from its sha256"
        return path, None

    return fetch


def check_manifest(manifest: Manifest, fetch: Fetch) -> pd.DataFrame:
    """Everything wrong with the version `manifest` describes, its files fetched by `fetch`.

    Checks every file it lists against its sha256 and size; that every file reads with its page
    checksums, has the contract's Arrow types and says in its footer that it is of this table
    and contract; that the tables (each the newest generation of every key) pass the pandera
    models batch by batch (memory does not grow with the version), keys and foreign keys; that
    row counts match the manifest and that the contract is this pipeline's. Never raises on
    damaged input. A file that differs from its sha256 is still read: the report then says what
    changed."""
    failures: list[dict[str, Any]] = []
    parts: dict[str, list[Part]] = {}
    for name in MODELS:
        found = []
        for file in manifest.tables[name]:
            label = _label(manifest, name, file)
            try:
                path, differs = fetch(file.key, file.sha256, file.bytes)
            except VersionDamagedError as err:
                failures.append(report_row(label, "file_present" if "missing" in str(err) else "readable", str(err)))
                continue
            if differs:
                failures.append(report_row(label, "sha256", differs))
            problems = _file_failures(label, name, path, manifest)
            failures += problems
            if not any(
                p["check"] == "readable" or p["check"].startswith(("arrow_type", "column_present")) for p in problems
            ):  # a footer that says otherwise: the rows are still checked
                found.append(Part(path, file.generation))
        if len(found) == len(manifest.tables[name]):
            parts[name] = found
    failures += _contract_failures(manifest, fetch)
    rows: dict[str, int] = {}
    model_failures: list[pd.DataFrame] = []
    for name, found in parts.items():
        counted, problems, found_rows = _table_failures(name, found)
        failures += problems
        model_failures += found_rows
        if counted is not None:
            rows[name] = counted
    report = pd.concat([pd.DataFrame(failures, columns=REPORT_COLUMNS), *model_failures], ignore_index=True)
    if len(rows) == len(MODELS):
        try:
            keys = version_key_failures(parts)
        except UnreadableInputError as err:
            keys = pd.DataFrame([report_row("keys", "readable", str(err))], columns=REPORT_COLUMNS)
        report = pd.concat([report, keys], ignore_index=True)
    extra = []
    counts = manifest.row_counts
    for name, counted in rows.items():
        if counts.get(name) != counted:
            extra.append(report_row(name, f"manifest_row_count({counts.get(name)})", str(counted)))
    if manifest.schema_fingerprint != schema_fingerprint():
        extra.append(report_row(MANIFEST, "schema_fingerprint", "the version was published under another contract"))
    if extra:
        report = pd.concat([report, pd.DataFrame(extra, columns=REPORT_COLUMNS)], ignore_index=True)
    return report


def _contract_failures(manifest: Manifest, fetch: Fetch) -> list[dict[str, Any]]:
    """What is wrong with the contract files the version lists: missing, unreadable, not as
    listed, or not this pipeline's contract."""
    failures = []
    for relative in CONTRACT_FILES:
        listed = manifest.own.get(relative)
        if listed is None:
            failures.append(report_row(relative, "file_present", "the manifest lists no such file"))
            continue
        try:
            path, differs = fetch(_own_key(manifest, relative), listed["sha256"], listed["bytes"])
            text = path.read_text(encoding="utf-8")
        except VersionDamagedError as err:
            failures.append(report_row(relative, "file_present" if "missing" in str(err) else "readable", str(err)))
            continue
        except (OSError, UnicodeDecodeError) as err:
            failures.append(report_row(relative, "readable", str(err)[:200]))
            continue
        if differs:
            failures.append(report_row(relative, "sha256", differs))
        current = contract_json() if relative == CONTRACT_FILES[0] else data_dictionary()
        if text != current:
            failures.append(report_row(relative, "contract_current", "differs from this pipeline's contract"))
    return failures


def _label(manifest: Manifest, name: str, file: DataFile) -> str:
    return f"{name}.parquet" if manifest.layout == 1 else file.key


def _own_key(manifest: Manifest, relative: str) -> str:
    if manifest.layout != 1:
        return version_key(manifest.id, relative)
    base = manifest.tables["papers"][0].key.rpartition("/")[0]
    return f"{base}/{relative}" if base else relative


def _file_failures(label: str, name: str, path: Path, manifest: Manifest) -> list[dict[str, Any]]:
    """What keeps one file of a table from being read as the contract's: page checksums, valid
    UTF-8, the contract's types, and a footer that says it is of this table and contract."""
    try:
        with contextlib.closing(pq.ParquetFile(path, page_checksum_verification=True)) as parquet:
            typed = _type_failures(name, parquet.schema_arrow)
            if typed:
                return typed
            for batch in parquet.iter_batches(batch_size=_CHECK_BATCH_ROWS):
                batch.validate(full=True)  # e.g. strings that are not UTF-8
                decoded(batch).to_pandas(date_as_object=True)  # a date32 past year 9999, say
            stored = parquet.metadata.metadata or {}
    except (OSError, pa.ArrowException, ValueError, OverflowError) as err:
        return [report_row(label, "readable", f"cannot be read: {str(err)[:300]}")]
    said = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in stored.items()}
    expected = {METADATA_PREFIX + "table": name, METADATA_PREFIX + "contract": table_contract_json(name),
                METADATA_PREFIX + "schema_fingerprint": str(manifest.schema_fingerprint)}  # fmt: skip
    if manifest.layout == 1:
        expected[METADATA_PREFIX + "version_id"] = manifest.id
    return [
        report_row(label, f"footer({key}={value[:40]})", said.get(key, "missing")[:80])
        for key, value in expected.items()
        if said.get(key) != value
    ]


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


def _table_failures(name: str, parts: list[Part]) -> tuple[int | None, list[dict[str, Any]], list[pd.DataFrame]]:
    """One table read batch by batch (never whole): its rows (None when it cannot be read
    through), what keeps it from being read, and what its model rejects."""
    rows, found = 0, []
    try:
        for batch in table_batches(name, parts, _CHECK_BATCH_ROWS):
            failures = batch_failures(name, batch, rows)
            if len(failures):
                found.append(failures)
            rows += batch.num_rows
    except (VersionDamagedError, UnreadableInputError, OSError, pa.ArrowException, ValueError, OverflowError) as err:
        return None, [report_row(name, "readable", str(err)[:300])], found
    return rows, [], found
