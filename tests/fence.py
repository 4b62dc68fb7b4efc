"""A Dask worker preload that fences a folder off, as if it were on another machine: any file access under it fails."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The audit events of Python's file operations whose first arguments are paths.
_PATH_EVENTS = frozenset({
    "open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.listdir", "os.scandir", "os.chmod",
    "os.link", "os.symlink", "os.truncate", "os.utime", "shutil.copyfile", "shutil.copytree", "shutil.rmtree",
    "shutil.move",
})  # fmt: skip
STAGING = "paper-listings-work-"  # the prefix of a staging task's own temporary folder (S3Storage.workspace)
staged_here: list[str] = []  # staging folders this worker made in its own temporary folder


def _fenced_hook(root: str, own: str):
    def hook(event: str, args: tuple) -> None:
        if event not in _PATH_EVENTS:
            return
        for arg in args[:2]:
            if isinstance(arg, str | bytes | os.PathLike):
                # string operations only: a hook that touched the disk would call itself
                path = os.path.abspath(os.fsdecode(arg))  # noqa: PTH100
                if path == root or path.startswith(root + os.sep):
                    raise PermissionError(f"fenced off from this worker: {path}")
                if event == "os.mkdir" and path.startswith(own) and os.path.basename(path).startswith(STAGING):  # noqa: PTH119
                    staged_here.append(path)

    return hook


def dask_setup(worker) -> None:
    """Fence off PIPELINE_TEST_FENCE for the rest of this worker's life (an audit hook cannot be removed)."""
    root = str(Path(os.environ["PIPELINE_TEST_FENCE"]).absolute())
    own = str(Path(os.environ["TMPDIR"]).absolute())
    sys.addaudithook(_fenced_hook(root, own))


def staged_count() -> int:
    """How many staging folders this worker made (called on each worker through `Client.run`);
    each counted once, however often it was asked for again (``mkdir(exist_ok=True)``)."""
    return len(set(staged_here))


def can_open(path: str) -> bool:
    """True when this worker can read `path` (the test's proof that the fence holds)."""
    try:
        with Path(path).open("rb"):
            return True
    except PermissionError:
        return False
