"""The staged layer's storage: each parsed capture as Parquet parts under ``staged/<key>/``, verified before use.

An entry is its parts, then its ``capture.json`` (written last: an entry with one is whole), keyed
on the listing's content, name, capture date and the code that parsed it, so that the same key
always holds the same rows. ``inputs.json`` remembers each listing's sha256 beside what its
storage says of it without reading it (its tag: size and change times on disk, ETag on S3), so
that a refresh does not read an unchanged listing again to find its key.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import StagedEntryInvalidError
from pipeline.parse.tables import STAGED_TABLES, staged_schema
from pipeline.settings import PARQUET_OPTIONS
from pipeline.storage import Storage
from pipeline.storage.files import file_digest, fsync_file, write_error
from pipeline.storage.verified import DigestMismatchError, cache_path, verified_copy

STAGED_META = "capture.json"
INPUTS = "inputs.json"
FORMAT = 2
# A capture.json larger than this is no description worth reading (one of 1,000 parts is ~300 KB).
_META_BYTES = 16 << 20


def staged_part_name(table: str, index: int) -> str:
    """File name of one part of a staged table (parts are numbered in line order)."""
    return f"{table}-{index:05d}.parquet"


def write_staged_part(folder: Path, index: int, tables: Mapping[str, pa.Table]) -> dict[str, dict[str, Any]]:
    """Write one parsed part of a capture into the local `folder` (replacing an earlier write of
    the same part); return each file's sha256 and size."""
    files = {}
    for name in STAGED_TABLES:
        path = folder / staged_part_name(name, index)
        try:
            pq.write_table(tables[name], path, **PARQUET_OPTIONS)
            fsync_file(path)
            files[path.name] = file_digest(path)
        except OSError as err:
            raise write_error(path, err) from None
    return files


def commit_staged(
    staged: Storage, folder: Path, key: str, meta: Mapping[str, Any], cache: Path | None = None
) -> dict[str, Any]:
    """Store the parts written into the local `folder` as the entry `key`, then its description
    (``capture.json``, last); return the description. Another run that staged the same key wrote
    the same bytes. A part still here once stored (uploaded, not moved) is kept in `cache`."""
    document = {"format": FORMAT, "key": key, **meta}
    for name in sorted(document["files"]):
        path = folder / name
        staged.put_file(f"{key}/{name}", path)
        if cache is not None and path.is_file():
            kept = cache_path(cache, document["files"][name]["sha256"])
            with contextlib.suppress(OSError):
                kept.parent.mkdir(parents=True, exist_ok=True)
                Path(path).replace(kept)
    staged.put(f"{key}/{STAGED_META}", json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8"))
    return document


def staged_meta(staged: Storage, key: str) -> dict[str, Any] | None:
    """The description of a staged capture, unverified (None when there is none, or it is not
    one of this format): what a run needs to know of an entry it will not read."""
    try:
        data = staged.get(f"{key}/{STAGED_META}")
    except OSError:
        return None
    if data is None or len(data) > _META_BYTES:
        return None
    try:
        meta = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != FORMAT
        or meta.get("key") != key
        or not isinstance(meta.get("files"), dict)
        or not isinstance(meta.get("parts"), int)
        or not isinstance(meta.get("counts"), dict)
        or meta["parts"] < 1
    ):
        return None
    return meta


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """A staged capture's parts as verified local files, by staged table, in line order."""

    files: dict[str, list[Path]]


def local_entry(staged: Storage, key: str, cache: Path) -> LocalEntry:
    """The entry `key` as verified local files: its description read, and every part of every
    staged table checked (a regular file equal to its sha256, with the staged schema); on
    storage that is not a local disk, downloaded into `cache` first. StagedEntryInvalidError,
    naming the first failure, when it is missing or damaged."""
    meta = staged_meta(staged, key)
    if meta is None:
        raise StagedEntryInvalidError(f"{STAGED_META} of {key} is missing or does not describe it in this format")
    names = [(table, staged_part_name(table, i)) for table in STAGED_TABLES for i in range(meta["parts"])]

    def fetch(item: tuple[str, str]) -> Path:
        table, name = item
        listed = meta["files"].get(name)
        if not isinstance(listed, dict):
            raise StagedEntryInvalidError(f"{name} has no sha256 in {STAGED_META}")
        try:
            path = verified_copy(staged, f"{key}/{name}", str(listed.get("sha256")), int(listed.get("bytes", -1)),
                                 cache)  # fmt: skip
            if not pq.read_schema(path).equals(staged_schema(table)):
                raise StagedEntryInvalidError(f"{name} does not have the staged columns and types")
        except FileNotFoundError:
            raise StagedEntryInvalidError(f"{name} is missing") from None
        except DigestMismatchError:
            raise StagedEntryInvalidError(f"{name} differs from the sha256 in {STAGED_META}") from None
        except (OSError, pa.ArrowException, ValueError) as err:
            raise StagedEntryInvalidError(f"{name} cannot be read: {str(err)[:200]}") from None
        return path

    # Hashing releases the GIL: two threads check (or fetch) a large entry in half the time.
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(fetch, names))
    files: dict[str, list[Path]] = {table: [] for table in STAGED_TABLES}
    for (table, _), path in zip(names, paths, strict=True):
        files[table].append(path)
    return LocalEntry(files)


def discard_staged(staged: Storage, key: str) -> None:
    """Remove a staged capture (its description first: a half-deleted entry is never whole)."""
    staged.delete([f"{key}/{STAGED_META}"])
    staged.delete([o.key for o in staged.list(key).objects])


def prune_staged(staged: Storage, keep: set[str]) -> int:
    """Delete the staged captures whose key is not in `keep` (listings no longer in the raw folder)."""
    entries = {o.key.split("/", 1)[0] for o in staged.list().objects if "/" in o.key}
    stale = sorted(entries - keep)
    for key in stale:
        discard_staged(staged, key)
    return len(stale)


@dataclass(frozen=True, slots=True)
class KnownInput:
    """What a run last found of a listing: its tag (as its storage gives it) and sha256."""

    tag: str
    size: int
    sha256: str


def known_inputs(staged: Storage) -> dict[str, KnownInput]:
    """The listings a run last read, by name (empty when there is no record or it is unreadable:
    it only spares reading a listing again)."""
    data = staged.get(INPUTS)
    if data is None or len(data) > _META_BYTES:
        return {}
    try:
        document = json.loads(data)
        return {str(name): KnownInput(str(v["tag"]), int(v["size"]), str(v["sha256"]))
                for name, v in dict(document).items()}  # fmt: skip
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError):
        return {}


def remember_inputs(staged: Storage, found: Iterable[tuple[str, KnownInput]]) -> None:
    """Record the listings a run read (their tag and sha256), replacing the last record."""
    document = {name: {"tag": k.tag, "size": k.size, "sha256": k.sha256} for name, k in sorted(found)}
    staged.put(INPUTS, (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
