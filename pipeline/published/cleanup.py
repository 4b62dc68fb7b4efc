"""What runs leave behind, removed: leftovers of dead runs, the legacy pickle cache, versions past --keep."""

from __future__ import annotations

import contextlib
from pathlib import Path

from pipeline.errors import StoreError
from pipeline.published.layout import INDEX, LEGACY_CACHE, REJECTED, STAGED, VERSION_ID, VERSIONS
from pipeline.published.manifest import read_manifest
from pipeline.published.versions import latest_id, version_ids, version_path
from pipeline.storage.local import TMP_PREFIX, owner_alive, remove, temporary_folder, tmp_name, write_error


def clean_incomplete(out_dir: Path, only_versions: bool = False) -> list[Path]:
    """Remove what interrupted runs left (temporary folders, links and files) in OUT, or only in
    its versions folder; return them.

    Safe at any time: the work in progress of a run that is still alive is left alone (a
    thread's own temporary entries count as leftovers: call it before making any).
    """
    removed = []
    roots = (
        (out_dir / VERSIONS,)
        if only_versions
        else (out_dir, out_dir / VERSIONS, out_dir / REJECTED, out_dir / STAGED, out_dir / INDEX)
    )
    for root in roots:
        if not root.is_dir() or root.is_symlink():
            continue
        for path in root.iterdir():
            if path.name.startswith(TMP_PREFIX) and not owner_alive(path.name):
                remove(path)
                removed.append(path)
    return removed


def remove_legacy_cache(out_dir: Path) -> bool:
    """Delete, unread, the pickle cache of an earlier release (unpickling can run code)."""
    legacy = out_dir / LEGACY_CACHE
    if not legacy.exists() and not legacy.is_symlink():
        return False
    remove(legacy)
    return True


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
        if isinstance(parent, str) and VERSION_ID.fullmatch(parent):
            protected.add(parent)
    ids = version_ids(out_dir)
    removable = [v for v in ids if v not in protected]
    excess = max(len(ids) - max(keep, len(protected)), 0)
    removed = removable[:excess]
    for version_id in removed:
        # Rename first so that a reader never sees a half-deleted version under its id.
        doomed = out_dir / VERSIONS / tmp_name(f"deleting-{version_id}")
        try:
            (out_dir / VERSIONS / version_id).rename(doomed)
        except OSError as err:
            raise write_error(out_dir / VERSIONS / version_id, err) from None
        remove(doomed)
    return removed


def scratch_folder(out_dir: Path) -> contextlib.AbstractContextManager[Path]:
    """A temporary folder under OUT for a run's working files (the assembly database, what it
    spills), removed at the end; a crashed run's is removed by the next writer."""
    return temporary_folder(out_dir, "scratch")
