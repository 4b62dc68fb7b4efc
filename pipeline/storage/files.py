"""Local file helpers every layer uses: digests, durable writes, one-line write errors."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from pipeline.errors import StoreWriteError

_ARROW_ERRNO = re.compile(r"\[errno (\d+)\]")


def write_error(path: Path | str, err: OSError) -> StoreWriteError:
    """One line naming the path and the cause; Arrow's errors carry the errno in their text only."""
    code = err.errno
    if code is None and (found := _ARROW_ERRNO.search(str(err))):
        code = int(found[1])
    cause = os.strerror(code) if code is not None else str(err)
    return StoreWriteError(f"cannot write {err.filename or path}: {cause}", code)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Make a file's bytes durable."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def bytes_digest(data: bytes) -> dict[str, Any]:
    """sha256 and size of bytes in memory, in `file_digest`'s shape."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def file_digest(path: Path) -> dict[str, Any]:
    """sha256 and size of a file, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "bytes": size}
