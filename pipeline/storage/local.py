"""The local disk as storage: temporary names that carry their owner, durable writes, the atomic rename."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pipeline.errors import StoreWriteError

TMP_PREFIX = ".tmp-"
_ARROW_ERRNO = re.compile(r"\[errno (\d+)\]")
# This machine, as temporary names record it (hashed: a host name is nobody else's business).
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TMP_OWNER = re.compile(r"-h([0-9a-f]{8})-pid(\d+)-t(\d+)\Z")


def inside(path: Path, root: Path) -> bool:
    """True when `path` is `root` or lies under it (both as given: resolve them first)."""
    return path == root or root in path.parents


def write_error(path: Path, err: OSError) -> StoreWriteError:
    """One line naming the path and the cause; Arrow's errors carry the errno in their text only."""
    code = err.errno
    if code is None and (found := _ARROW_ERRNO.search(str(err))):
        code = int(found[1])
    cause = os.strerror(code) if code is not None else str(err)
    return StoreWriteError(f"cannot write {err.filename or path}: {cause}", code)


def remove(path: Path) -> None:
    """Remove a file, link or folder, ignoring what is already gone (cleanup must not fail)."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def tmp_name(what: str) -> str:
    """Name of a temporary entry, carrying its writer's host and pid so that cleanup can tell a
    live run's work in progress from a dead run's leftovers."""
    return f"{TMP_PREFIX}{what}-h{HOST}-pid{os.getpid()}-t{threading.get_ident()}"


def owner_alive(name: str) -> bool:
    """True when the temporary entry `name` may belong to a run still in progress: one of
    another host (OUT shared between machines or containers: it cannot be checked), or a live
    process here other than this thread."""
    found = _TMP_OWNER.search(name)
    if found is None:
        return False  # no owner recorded: a leftover
    host, pid, thread = found[1], int(found[2]), int(found[3])
    if host != HOST:
        return True
    if pid == os.getpid():
        return thread != threading.get_ident()
    return pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """True when a process `pid` lives on this machine (another user's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


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


def move_into_place(tmp: Path, folder: Path) -> None:
    """Rename a finished folder into place; when another run put the same content there first
    (its name is its content's key), keep theirs and drop ours."""
    try:
        tmp.rename(folder)
    except OSError as err:
        if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        remove(tmp)


def atomic_text(path: Path, text: str) -> None:
    """Replace the file `path` with `text` at once: a reader sees the old text or the new."""
    tmp = path.with_name(tmp_name(path.name))
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError:
        remove(tmp)
        raise


@contextlib.contextmanager
def temporary_folder(parent: Path, what: str) -> Iterator[Path]:
    """A folder named as temporary (with its owner), removed on the way out unless moved away."""
    tmp = parent / tmp_name(what)
    try:
        tmp.mkdir(parents=True)
    except OSError as err:
        raise write_error(tmp, err) from None
    try:
        yield tmp
    finally:
        remove(tmp)


class LocalStorage:
    """`Storage` on a local folder: keys are paths relative to `root`; a write is durable (fsync)
    when its block ends; `rename` is the one atomic step a version's commit needs here."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """Where `key` lives on this disk (for readers that take a path: DuckDB, pyarrow)."""
        return self.root / key if key else self.root

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """A new file at `key` (replacing one there), streamed; synced to disk when the block ends."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())

    def write_bytes(self, key: str, data: bytes) -> None:
        """`open_write` with all the bytes at once."""
        with self.open_write(key) as handle:
            handle.write(data)

    def read_bytes(self, key: str) -> bytes:
        """The whole file at `key`; never through a link."""
        path = self.path(key)
        if path.is_symlink():
            raise OSError(errno.ELOOP, f"{path} is a link, not a file")
        return path.read_bytes()

    def list(self, prefix: str) -> list[str]:
        """Names of the entries directly under the folder `prefix`, sorted (none when it is not one)."""
        folder = self.path(prefix)
        if not folder.is_dir() or folder.is_symlink():
            return []
        return sorted(entry.name for entry in folder.iterdir())

    def delete(self, key: str) -> None:
        """Remove the file or folder at `key`; what is already gone is not an error."""
        remove(self.path(key))

    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Write `data` at `key` unless something is there already (then False): never overwrites."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def rename(self, source: str, target: str) -> None:
        """Move the folder `source` to `target` at once, and make the move durable; OSError
        (EEXIST, ENOTEMPTY) when `target` is taken: a folder is never merged into another."""
        self.path(source).rename(self.path(target))
        fsync_dir(self.path(target).parent)
