"""The manifest of a version: its shape, read back with every key checked, and written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import VersionDamagedError
from pipeline.published.layout import MANIFEST, VERSION_FILES, VERSION_ID
from schemas.contract import schema_fingerprint

# What readers of a manifest rely on: each key present (or optional) with its JSON type.
_MANIFEST_SHAPE: dict[str, tuple[type, bool]] = {
    "id": (str, True),
    "created_at": (str, True),
    "row_counts": (dict, True),
    "files": (dict, True),
    "parent_id": (str, False),
    "fingerprint": (str, False),
    "schema_fingerprint": (str, False),
    "inputs": (list, False),
    "skipped_inputs": (list, False),
    "records": (int, False),
    "rejects": (int, False),
}


MAX_MANIFEST_BYTES = 64 << 20


def manifest_problems(manifest: Mapping[str, Any]) -> list[str]:
    """What is missing from a manifest or of the wrong type (empty when its shape is right)."""
    problems = []
    for key, (kind, required) in _MANIFEST_SHAPE.items():
        value = manifest.get(key)
        if value is None:
            if required:
                problems.append(f"{key!r} is missing")
        elif not isinstance(value, kind) or isinstance(value, bool):
            problems.append(f"{key!r} is not a JSON {kind.__name__}")
    counts = manifest.get("row_counts")
    if isinstance(counts, dict) and not all(isinstance(n, int) and not isinstance(n, bool) for n in counts.values()):
        problems.append("'row_counts' holds a value that is not a whole number")
    files = manifest.get("files")
    if isinstance(files, dict):
        unknown = sorted(set(files) - VERSION_FILES)
        if unknown:
            problems.append(f"'files' names what is no part of a version: {unknown[0][:80]!r}")
        if not all(isinstance(f, dict) for f in files.values()):
            problems.append("'files' holds an entry that is not a JSON object")
    return problems


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the version folder `path`; VersionDamagedError when it is not readable JSON
    of the manifest's shape."""
    file = path / MANIFEST
    try:
        if file.is_symlink():
            raise VersionDamagedError(f"{file} is a link, not a file")
        if file.stat().st_size > MAX_MANIFEST_BYTES:
            raise VersionDamagedError(f"{file} has more than {MAX_MANIFEST_BYTES >> 20} MiB")
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise VersionDamagedError(f"{file} cannot be read: {str(err)[:200]}") from None
    if not isinstance(manifest, dict):
        raise VersionDamagedError(f"{file} is not a JSON object")
    problems = manifest_problems(manifest)
    if VERSION_ID.fullmatch(path.name) and manifest.get("id") != path.name:
        problems.append(f"its id {str(manifest.get('id'))[:20]!r} is not its folder's name {path.name!r}")
    if problems:
        raise VersionDamagedError(f"{file}: {'; '.join(problems)}")
    return manifest


def version_manifest(
    run: Mapping[str, Any],
    *,
    version_id: str,
    parent_id: str | None,
    created_at: datetime,
    row_counts: Mapping[str, int],
    files: Mapping[str, Any],
) -> dict[str, Any]:
    """The manifest of a version, the one place it is put together: its id, parent and time,
    then what the run says of its inputs and code (`run`), the fingerprint of the contract written
    beside the tables, its tables' row counts and every file's sha256 and size."""
    return {
        "id": version_id,
        "parent_id": parent_id,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        **run,
        "schema_fingerprint": schema_fingerprint(),
        "row_counts": dict(row_counts),
        "files": dict(files),
    }


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """A manifest as its file holds it: indented JSON, UTF-8."""
    return (json.dumps(dict(manifest), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Write `manifest` into the folder `folder` (replacing one there)."""
    (folder / MANIFEST).write_bytes(manifest_bytes(manifest))
