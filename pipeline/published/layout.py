"""The dataset folder's layout: OUT's own entries, what a version holds, and the checks made before writing."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.db import check_plain_path
from pipeline.errors import StoreError
from pipeline.staged.store import STAGED
from pipeline.storage.local import remove, tmp_name, write_error
from pipeline.storage.lock import LOCK_FILE
from schemas import MODELS

VERSIONS = "versions"
LATEST = "latest"
# Not "LATEST": on a case-insensitive file system (macOS) that is the `latest` link itself.
POINTER = "LATEST_ID"
MANIFEST = "manifest.json"
CONTRACT = "contract"
CONTRACT_FILES = (f"{CONTRACT}/schema.json", f"{CONTRACT}/data_dictionary.md")
# The version at a glance, written by the reporting layer and handed to the transaction as a file.
REPORT_FILE = "report.html"
VERSION_FILES = frozenset({f"{name}.parquet" for name in MODELS} | set(CONTRACT_FILES) | {REPORT_FILE})
REJECTED = "rejected"  # rejects of runs refused by --max-reject-rate
INDEX = "index"  # OUT/index/<id>.parquet: where each papers row of version <id> came from, hashed
LEGACY_CACHE = ".cache"  # pickles of an earlier release: deleted unread
VERSION_ID = re.compile(r"[0-9]{6}")

# The kind each of OUT's own entries must be: writing through a link would act outside OUT, and
# a `latest` that is a real folder (copied with `cp -rL`) would keep readers on stale data.
_LAYOUT = ((VERSIONS, "folder"), (STAGED, "folder"), (REJECTED, "folder"), (INDEX, "folder"), (LATEST, "link"),
           (POINTER, "file"), (LOCK_FILE, "file"))  # fmt: skip


def check_layout(out_dir: Path) -> None:
    """StoreError naming every entry of `out_dir` that is of the wrong kind (a link, a folder...)."""
    problems = []
    for name, kind in _LAYOUT:
        path = out_dir / name
        if not path.exists() and not path.is_symlink():
            continue
        if kind == "link":
            right = path.is_symlink()
        else:
            right = not path.is_symlink() and (path.is_dir() if kind == "folder" else path.is_file())
        if not right:
            problems.append(f"{path} is not a {kind}")
    if problems:
        raise StoreError(f"{'; '.join(problems)}: refusing to write through it. Move it away and run again")


def check_writable(out_dir: Path) -> None:
    """Fail early, with the cause, when `out_dir` cannot be created or written, holds entries of
    the wrong kind (`check_layout`), or has a path DuckDB would misread (`check_plain_path`)."""
    check_plain_path(out_dir)
    check_layout(out_dir)
    probe = out_dir / tmp_name("probe")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as handle:
            handle.write(b"probe")
            os.fsync(handle.fileno())
    except OSError as err:
        raise write_error(out_dir, err) from None
    finally:
        remove(probe)


def check_version_id(version_id: str) -> str:
    """`version_id` when it has the exact shape of one (six digits); else a StoreError."""
    if not VERSION_ID.fullmatch(version_id):
        raise StoreError(f"{version_id!r} is not a version id (six digits, e.g. 000001)")
    return version_id
