"""The versioned Parquet store: the only module that writes output.

Layout under OUT::

    versions/000001/  <table>.parquet ..., manifest.json, contract/{schema.json,data_dictionary.md}
    latest -> versions/000001     (symlink, swapped atomically with rename)
    LATEST                        (pointer file with the id, for readers without symlinks)
    .lock                         (one writer at a time)

A version is written into ``versions/.tmp-<id>-<pid>`` and renamed into place only when complete,
then ``latest`` is swapped. A crash leaves at worst a ``.tmp-*`` folder, removed by the next writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.tables import ListingResult
from schemas import MODELS, DatasetInvalidError, arrow_schema, validate_dataset
from schemas.contract import contract_json, data_dictionary
from schemas.validate import REPORT_COLUMNS

VERSIONS = "versions"
LATEST = "latest"
POINTER = "LATEST"
MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
REJECTED = "rejected"  # rejects of runs refused by --max-reject-rate
CACHE = ".cache"  # parsed listings, keyed on content: OUT/.cache/<key>.pickle


class StoreError(Exception):
    """The store cannot be read or written as asked."""


class StoreLockedError(StoreError):
    """Another run holds the writer lock."""


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What a publish did: the version that is now latest, and whether it is new."""

    version_id: str
    path: Path
    published: bool
    parent_id: str | None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def writer_lock(out_dir: Path, timeout_s: float) -> Iterator[None]:
    """Hold the store's exclusive writer lock; wait up to `timeout_s` seconds for it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lock_path = out_dir / ".lock"
    with lock_path.open("a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise StoreLockedError(
                        f"another run ({holder}) is publishing to {out_dir}; waited {timeout_s:.0f} s. "
                        "Retry when it has finished."
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def version_ids(out_dir: Path) -> list[str]:
    """Ids of the complete versions, oldest first."""
    root = out_dir / VERSIONS
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def latest_id(out_dir: Path) -> str | None:
    """The id that `latest` points at (symlink first, then the pointer file)."""
    link = out_dir / LATEST
    if link.is_symlink():
        return link.readlink().name
    pointer = out_dir / POINTER
    if pointer.is_file():
        return pointer.read_text(encoding="utf-8").strip() or None
    return None


def version_path(out_dir: Path, version_id: str | None = None) -> Path:
    """Folder of a version (`latest` when no id is given)."""
    chosen = version_id or latest_id(out_dir)
    if chosen is None:
        raise StoreError(f"no version has been published under {out_dir}")
    path = out_dir / VERSIONS / chosen
    if not (path / MANIFEST).is_file():
        raise StoreError(f"version {chosen} does not exist under {out_dir}")
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the version folder `path`."""
    with (path / MANIFEST).open(encoding="utf-8") as handle:
        manifest: dict[str, Any] = json.load(handle)
    return manifest


def fingerprint(out_dir: Path, version_id: str) -> str | None:
    """The content fingerprint recorded in a version's manifest."""
    value = read_manifest(version_path(out_dir, version_id)).get("fingerprint")
    return str(value) if value is not None else None


def read_tables(path: Path, tables: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Read a version folder's tables into pandas (dates stay `datetime.date`)."""
    names = list(tables) if tables is not None else list(MODELS)
    frames = {}
    for name in names:
        table = pq.read_table(path / f"{name}.parquet")
        frames[name] = table.to_pandas(date_as_object=True)
    return frames


def check_version_folder(path: Path) -> pd.DataFrame:
    """Everything wrong with a version folder, for the receiving side of a hand-off.

    Checks that every table file exists with the contract's Arrow types, that the tables pass
    the pandera models and foreign keys, and that row counts match the manifest. Returns the
    failures in the report format of `schemas.validate` (empty when the folder conforms).
    """
    failures: list[dict[str, Any]] = []
    for name in MODELS:
        file = path / f"{name}.parquet"
        if not file.is_file():
            failures.append(
                {"table": name, "column": None, "check": "file_present", "row": None, "failure_case": str(file)}
            )
            continue
        actual = pq.read_schema(file)
        for field in arrow_schema(name):
            if field.name not in actual.names:
                failures.append(
                    {"table": name, "column": field.name, "check": "column_present", "row": None, "failure_case": None}
                )
            elif not actual.field(field.name).type.equals(field.type):
                failures.append({
                    "table": name, "column": field.name, "check": f"arrow_type({field.type})",
                    "row": None, "failure_case": str(actual.field(field.name).type),
                })  # fmt: skip
    report = pd.DataFrame(failures, columns=REPORT_COLUMNS)
    if failures:
        return report
    tables = read_tables(path)
    try:
        validate_dataset(tables)
    except DatasetInvalidError as err:
        report = pd.concat([report, err.report], ignore_index=True)
    if (path / MANIFEST).is_file():
        counts = read_manifest(path).get("row_counts", {})
        for name, frame in tables.items():
            if name in counts and counts[name] != len(frame):
                row = {"table": name, "column": None, "check": f"manifest_row_count({counts[name]})",
                       "row": None, "failure_case": str(len(frame))}  # fmt: skip
                report = pd.concat([report, pd.DataFrame([row])], ignore_index=True)
    return report


def _write_parquet(frame: pd.DataFrame, table: str, path: Path) -> None:
    arrow = pa.Table.from_pandas(frame, schema=arrow_schema(table), preserve_index=False)
    pq.write_table(arrow, path, compression="zstd")
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(dict(manifest), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _point_latest(out_dir: Path, version_id: str) -> None:
    tmp_link = out_dir / f"{TMP_PREFIX}latest-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    try:
        tmp_link.symlink_to(Path(VERSIONS) / version_id, target_is_directory=True)
        tmp_link.replace(out_dir / LATEST)
    except OSError:
        pass  # no symlinks here: the pointer file below is the reference
    _atomic_text(out_dir / POINTER, version_id + "\n")
    _fsync_dir(out_dir)


def clean_incomplete(out_dir: Path) -> list[Path]:
    """Remove what an interrupted run left (temporary folders, links and files); return them."""
    removed = []
    for root in (out_dir, out_dir / VERSIONS, out_dir / REJECTED, out_dir / CACHE):
        if not root.is_dir():
            continue
        for path in root.iterdir():
            if path.name.startswith(TMP_PREFIX):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
    return removed


def read_cached_listing(cache_dir: Path, key: str) -> ListingResult | None:
    """A parsed listing from the cache, or None when absent or unreadable (then it is re-parsed)."""
    path = cache_dir / f"{key}.pickle"
    try:
        with path.open("rb") as handle:
            value = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    return value if isinstance(value, ListingResult) else None


def write_cached_listing(cache_dir: Path, key: str, result: ListingResult) -> None:
    """Store a parsed listing under its key (atomically: concurrent runs may write the same key)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f"{TMP_PREFIX}{key}-{os.getpid()}-{threading.get_ident()}"
    with tmp.open("wb") as handle:
        pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(cache_dir / f"{key}.pickle")


def prune_cache(cache_dir: Path, keep: set[str]) -> int:
    """Delete cached listings whose key is not in `keep` (files no longer in the raw folder)."""
    if not cache_dir.is_dir():
        return 0
    stale = [p for p in cache_dir.glob("*.pickle") if p.stem not in keep]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def write_rejected(out_dir: Path, rejects: pd.DataFrame, manifest: Mapping[str, Any]) -> Path:
    """Write the rejects of a run that was refused, outside any version; return the folder.

    ``OUT/rejected/<fingerprint>/`` holds rejects.parquet, rejects.csv and the run's manifest.
    """
    folder = out_dir / REJECTED / str(manifest["fingerprint"])[:16]
    staging = folder.with_name(f"{TMP_PREFIX}{folder.name}-{os.getpid()}")
    staging.mkdir(parents=True)
    _write_parquet(rejects, "rejects", staging / "rejects.parquet")
    rejects.to_csv(staging / "rejects.csv", index=False)
    _write_manifest(staging, manifest)
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return folder


def prune_versions(out_dir: Path, keep: int) -> list[str]:
    """Delete the oldest versions so that `keep` remain; never `latest` nor its parent.

    Call under `writer_lock`. Returns the ids removed.
    """
    if keep < 1:
        raise StoreError("--keep must be at least 1")
    current = latest_id(out_dir)
    protected = {current} if current else set()
    if current:
        parent = read_manifest(version_path(out_dir, current)).get("parent_id")
        if parent:
            protected.add(str(parent))
    ids = version_ids(out_dir)
    removable = [v for v in ids if v not in protected]
    excess = max(len(ids) - max(keep, len(protected)), 0)
    removed = removable[:excess]
    for version_id in removed:
        # Rename first so that a reader never sees a half-deleted version under its id.
        doomed = out_dir / VERSIONS / f"{TMP_PREFIX}deleting-{version_id}"
        (out_dir / VERSIONS / version_id).rename(doomed)
        shutil.rmtree(doomed)
    return removed


def publish_version(
    out_dir: Path,
    tables: Mapping[str, pd.DataFrame],
    manifest: Mapping[str, Any],
    created_at: datetime,
    force: bool = False,
) -> PublishOutcome:
    """Write `tables` as a new immutable version and point `latest` at it.

    Call under `writer_lock`. When `manifest["fingerprint"]` equals latest's and `force` is
    false, nothing is written and the outcome says so.
    """
    clean_incomplete(out_dir)
    parent = latest_id(out_dir)
    if not force and parent is not None and fingerprint(out_dir, parent) == manifest.get("fingerprint"):
        return PublishOutcome(parent, out_dir / VERSIONS / parent, False, parent)
    existing = version_ids(out_dir)
    version_id = f"{int(existing[-1]) + 1 if existing else 1:06d}"
    root = out_dir / VERSIONS
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f"{TMP_PREFIX}{version_id}-{os.getpid()}"
    staging.mkdir()
    for name, frame in tables.items():
        _write_parquet(frame, name, staging / f"{name}.parquet")
    contract = staging / "contract"
    contract.mkdir()
    (contract / "schema.json").write_text(contract_json(), encoding="utf-8")
    (contract / "data_dictionary.md").write_text(data_dictionary(), encoding="utf-8")
    full_manifest = {
        "id": version_id,
        "parent_id": parent,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        **manifest,
        "row_counts": {name: len(frame) for name, frame in tables.items()},
    }
    _write_manifest(staging, full_manifest)
    _fsync_dir(staging)
    staging.rename(root / version_id)
    _fsync_dir(root)
    _point_latest(out_dir, version_id)
    return PublishOutcome(version_id, root / version_id, True, parent)
