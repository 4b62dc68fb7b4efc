"""The staged layer's storage: each parsed capture as Parquet parts under OUT/staged/<key>/, verified before use."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import StagedEntryInvalidError
from pipeline.parse.tables import STAGED_TABLES, staged_schema
from pipeline.settings import PARQUET_OPTIONS
from pipeline.storage.local import (
    TMP_PREFIX,
    file_digest,
    fsync_dir,
    fsync_file,
    move_into_place,
    remove,
    temporary_folder,
    tmp_name,
    write_error,
)

STAGED = "staged"  # parsed captures, keyed on content: OUT/staged/<key>/
STAGED_META = "capture.json"


def _write_arrow(table: pa.Table, path: Path) -> dict[str, Any]:
    pq.write_table(table, path, **PARQUET_OPTIONS)
    fsync_file(path)
    return file_digest(path)


def staged_part_name(table: str, index: int) -> str:
    """File name of one part of a staged table (parts are numbered in line order)."""
    return f"{table}-{index:05d}.parquet"


def write_staged_part(folder: Path, index: int, tables: Mapping[str, pa.Table]) -> dict[str, dict[str, Any]]:
    """Write one parsed part of a capture into its staging folder (replacing an earlier write of
    the same part); return each file's sha256 and size."""
    files = {}
    for name in STAGED_TABLES:
        path = folder / staged_part_name(name, index)
        try:
            files[path.name] = _write_arrow(tables[name], path)
        except OSError as err:
            raise write_error(path, err) from None
    return files


def staging_folder(staged_dir: Path, key: str) -> contextlib.AbstractContextManager[Path]:
    """A temporary folder for a capture being staged; removed unless `commit_staged` moved it."""
    return temporary_folder(staged_dir, key)


def commit_staged(folder: Path, staged_dir: Path, key: str, meta: Mapping[str, Any]) -> None:
    """Describe a fully staged capture in ``capture.json`` and rename its folder into place under
    its key (another run that staged the same key first keeps its folder: the same content)."""
    document = {"format": 2, "key": key, **meta}
    try:
        (folder / STAGED_META).write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
        fsync_dir(folder)
        move_into_place(folder, staged_dir / key)
    except OSError as err:
        raise write_error(folder, err) from None


# A capture.json larger than this is no hint worth reading (one of 1,000 parts is ~300 KB).
_HINT_BYTES = 16 << 20


def staged_listings(staged_dir: Path) -> frozenset[tuple[str, int]]:
    """(source file, size in bytes) of the captures the staged layer describes, unverified: a
    hint of what a run will not parse (`read_staged` is what decides). Unreadable entries are left out."""
    found = set()
    for meta_path in staged_dir.glob(f"*/{STAGED_META}"):
        try:
            if meta_path.stat().st_size > _HINT_BYTES:
                continue
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            found.add((str(meta["source_file"]), int(meta["counts"]["size_bytes"])))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError):
            continue
    return frozenset(found)


def read_staged(staged_dir: Path, key: str) -> dict[str, Any] | None:
    """The description of a staged capture, verified, or None when there is none.

    Verification: the folder is a real one named by the key; ``capture.json`` names the same key,
    its parts and each file's sha256; every part of every staged table is there, a regular file
    equal to its sha256, with the staged schema in its footer. Raises StagedEntryInvalidError,
    naming the first failure, otherwise.
    """
    folder = staged_dir / key
    if not folder.exists() and not folder.is_symlink():
        return None
    if folder.is_symlink() or not folder.is_dir():
        raise StagedEntryInvalidError(f"{folder} is not a folder")
    try:
        meta = json.loads((folder / STAGED_META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise StagedEntryInvalidError(f"{STAGED_META} cannot be read: {str(err)[:200]}") from None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != 2
        or meta.get("key") != key
        or not isinstance(meta.get("files"), dict)
        or not isinstance(meta.get("parts"), int)
        or not isinstance(meta.get("counts"), dict)
        or meta["parts"] < 1
    ):
        raise StagedEntryInvalidError(f"{STAGED_META} does not describe key {key} in this format")
    tables = [name for name in STAGED_TABLES for _ in range(meta["parts"])]
    files = [folder / staged_part_name(name, i) for name in STAGED_TABLES for i in range(meta["parts"])]
    # Hashing releases the GIL: two threads check a large entry in half the time.
    with ThreadPoolExecutor(2) as pool:
        for problem in pool.map(partial(_staged_part_problem, digests=meta["files"]), tables, files):
            if problem:
                raise StagedEntryInvalidError(problem)
    return meta


def _staged_part_problem(table: str, file: Path, digests: Mapping[str, Any]) -> str | None:
    """Why a staged part cannot be used (missing, edited, other columns), or None."""
    try:
        if file.is_symlink() or not file.is_file():
            return f"{file.name} is missing or not a file"
        if file_digest(file) != digests.get(file.name):
            return f"{file.name} differs from the sha256 in {STAGED_META}"
        if not pq.read_schema(file).equals(staged_schema(table)):
            return f"{file.name} does not have the staged columns and types"
    except (OSError, pa.ArrowException) as err:
        return f"{file.name} cannot be read: {str(err)[:200]}"
    return None


def staged_present(staged_dir: Path, key: str) -> bool:
    """True when a staged capture is in place (a folder with its description): a cheap check of
    presence, not of integrity (`read_staged` verifies)."""
    folder = staged_dir / key
    return folder.is_dir() and not folder.is_symlink() and (folder / STAGED_META).is_file()


def discard_staged(staged_dir: Path, key: str) -> None:
    """Remove a staged capture that failed verification, so that a fresh parse can take its place."""
    doomed = staged_dir / tmp_name(f"discard-{key}")
    try:
        (staged_dir / key).rename(doomed)
    except OSError:
        return  # already gone (another run discarded it), or not ours to move: a parse follows anyway
    remove(doomed)


def prune_staged(staged_dir: Path, keep: set[str]) -> int:
    """Delete staged captures whose key is not in `keep` (files no longer in the raw folder)."""
    if not staged_dir.is_dir():
        return 0
    stale = [p for p in staged_dir.iterdir() if not p.name.startswith(TMP_PREFIX) and p.name not in keep]
    for path in stale:
        remove(path)
    return len(stale)
