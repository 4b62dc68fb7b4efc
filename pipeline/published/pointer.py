"""The `latest` pointer: a symlink swapped with rename, and LATEST_ID for readers without symlinks."""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path

from pipeline.published.layout import LATEST, POINTER, VERSIONS
from pipeline.storage.local import atomic_text, fsync_dir, remove, tmp_name

# What creating a symlink raises where the file system has none (FAT, some network shares).
_NO_SYMLINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.ENOTSUP})


def point_latest(out_dir: Path, version_id: str) -> None:
    tmp_link = out_dir / tmp_name("latest")
    try:
        tmp_link.symlink_to(Path(VERSIONS) / version_id, target_is_directory=True)
    except OSError as err:
        if err.errno not in _NO_SYMLINKS:
            raise
    else:
        try:
            tmp_link.replace(out_dir / LATEST)  # a failure here must not pass for "no symlinks"
        except OSError:
            remove(tmp_link)
            raise
    atomic_text(out_dir / POINTER, version_id + "\n")
    fsync_dir(out_dir)


def unpoint_latest(out_dir: Path, parent: str | None) -> None:
    """Best-effort return of `latest` to `parent` after a failed publish."""
    with contextlib.suppress(OSError):
        if parent is not None:
            point_latest(out_dir, parent)
        else:
            remove(out_dir / LATEST)
            remove(out_dir / POINTER)
