"""The local disk as storage: whole durable writes, create-if-absent by link, flock, owner-tagged temporaries."""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import StoreError
from pipeline.storage.files import fsync_dir, fsync_file, write_error
from pipeline.storage.interface import Lease, Listing, ObjectInfo, check_key
from pipeline.storage.lock import writer_lock

TMP_PREFIX = ".tmp-"
# This machine, as temporary names and lock holders record it (hashed: a host name is nobody else's business).
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TMP_OWNER = re.compile(r"-h([0-9a-f]{8})-pid(\d+)-t(\d+)\Z")
# What a path DuckDB (or a glob) is given must not hold: it would read them as a pattern or option.
PATTERN_CHARACTERS = frozenset("*?[]{}\\")
# What creating a link raises where the file system has none (FAT, some network shares).
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV, errno.EMLINK})


def inside(path: Path, root: Path) -> bool:
    """True when `path` is `root` or lies under it (both as given: resolve them first)."""
    return path == root or root in path.parents


def remove(path: Path) -> None:
    """Remove a file, link or folder, ignoring what is already gone (cleanup must not fail)."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def tmp_name(what: str) -> str:
    """Name of a temporary entry, carrying its writer's host, pid and thread so that cleanup can
    tell a live run's work in progress from a dead run's leftovers."""
    return f"{TMP_PREFIX}{what}-h{HOST}-pid{os.getpid()}-t{threading.get_ident()}"


def owner_alive(name: str) -> bool:
    """True when the temporary entry `name` may belong to a writer still at work: one of another
    host (a folder shared between machines: it cannot be checked), or a live process here other
    than this thread."""
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


@contextlib.contextmanager
def temporary_folder(parent: Path, what: str) -> Iterator[Path]:
    """A folder named as temporary (with its owner), removed on the way out."""
    tmp = parent / tmp_name(what)
    try:
        tmp.mkdir(parents=True)
    except OSError as err:
        raise write_error(tmp, err) from None
    try:
        yield tmp
    finally:
        remove(tmp)


class _FileLease:
    """A held flock: it lasts as long as the process holds the file, so it is never lost."""

    def check(self) -> None:
        return None


class LocalStorage:
    """`Storage` on a local folder: keys are paths relative to `root`.

    A write goes to a temporary name beside its target (named for its owner), is synced, then
    renamed into place, so that a reader sees the old object or the new one, never a part; a
    create-if-absent links the finished file into place, which fails when a file is there. No
    write goes through a link (it would act outside the root); a link is only ever an `alias`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    @property
    def url(self) -> str:
        return str(self.root)

    def where(self, key: str) -> str:
        return str(self.path(key))

    def uri(self, key: str = "") -> str:
        return str(self.path(key).absolute())

    def child(self, prefix: str) -> LocalStorage:
        return LocalStorage(self.path(prefix))

    def within(self, other: object) -> bool:
        return isinstance(other, LocalStorage) and inside(self.root.resolve(), other.root.resolve())

    def parent(self) -> LocalStorage:
        return LocalStorage(self.root.absolute().parent)

    @property
    def name(self) -> str:
        return self.root.name

    def path(self, key: str) -> Path:
        """Where `key` lives on this disk."""
        return self.root / check_key(key) if key else self.root

    # --- reading -----------------------------------------------------------------------------------

    def _regular(self, key: str) -> Path | None:
        """The file at `key` when it is a regular file; None when nothing is there; OSError (ELOOP)
        for a link, which is never followed."""
        path = self.path(key)
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        if stat.S_ISLNK(info.st_mode):
            raise OSError(errno.ELOOP, f"{path} is a link, not a file")
        if not stat.S_ISREG(info.st_mode):
            return None
        return path

    def get(self, key: str) -> bytes | None:
        path = self._regular(key)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        path = self._regular(key)
        if path is None:
            raise FileNotFoundError(self.where(key))
        with path.open("rb") as handle:
            handle.seek(start)
            return handle.read(length)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._regular(key)
        if path is None:
            return None
        return _info(key, path.stat())

    @property
    def reads_in_place(self) -> bool:
        return True

    def local_file(self, key: str, into: Path) -> Path:
        """The file itself. A link is followed only to a regular file inside the root (as `list`
        lists it), so that what is read is what was listed."""
        path = self.path(key)
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            raise FileNotFoundError(self.where(key)) from None
        except (RuntimeError, OSError) as err:
            raise OSError(errno.ELOOP, f"{path} cannot be followed: {err}") from None
        if not inside(real, self.root.resolve()):
            raise OSError(errno.EXDEV, f"{path} leads outside {self.root}")
        if not real.is_file():
            raise FileNotFoundError(self.where(key))
        return real

    def list(self, prefix: str = "") -> Listing:
        """Every regular file under `prefix` (temporary entries left out). Links are followed to
        files inside the root only; a link that leads outside, loops, or names a folder outside
        is passed over with the reason, as is anything that is not a regular file (a FIFO)."""
        base = self.path(prefix)
        objects: list[ObjectInfo] = []
        skipped: list[tuple[str, str]] = []
        if prefix and base.is_symlink():
            raise StoreError(f"{base} is a link: refusing to read through it (it could lead outside {self.root})")
        if not base.is_dir():
            return Listing(objects, skipped)
        root = self.root.resolve()
        for folder, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(TMP_PREFIX))
            for dirname in dirnames:
                link = Path(folder) / dirname
                if link.is_symlink() and not inside(link.resolve(strict=False), root):
                    skipped.append((self._key(link), "a link to a folder outside the root: not followed"))
            for filename in sorted(filenames):
                if filename.startswith(TMP_PREFIX):
                    continue
                path = Path(folder) / filename
                key = self._key(path)
                try:
                    real = path.resolve(strict=True)
                except (RuntimeError, OSError) as err:  # a link loop (RuntimeError up to Python 3.12)
                    reason = (
                        "a link that loops"
                        if isinstance(err, RuntimeError) or err.errno == errno.ELOOP
                        else ("a link to nothing" if path.is_symlink() else f"cannot be read ({err.strerror})")
                    )
                    skipped.append((key, f"{reason}: not followed"))
                    continue
                if not inside(real, root):
                    skipped.append((key, "a link that leads outside the root: not followed"))
                    continue
                try:
                    info = real.stat()
                except OSError as err:
                    skipped.append((key, f"cannot be read ({err.strerror})"))
                    continue
                if not stat.S_ISREG(info.st_mode):
                    skipped.append((key, "not a regular file"))
                    continue
                objects.append(_info(key, info))
        objects.sort(key=lambda o: o.key)
        return Listing(objects, skipped)

    def _key(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # --- writing -----------------------------------------------------------------------------------

    def _target(self, key: str) -> Path:
        """The path to write `key` at, its folders made; StoreError when a folder on the way is a
        link (writing through it would act outside the root)."""
        path = self.path(check_key(key))
        folder = self.root
        for part in Path(key).parts[:-1]:
            folder = folder / part
            if folder.is_symlink():
                raise StoreError(f"{folder} is a link: refusing to write through it. Move it away and run again")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(path.parent, err) from None
        return path

    @contextlib.contextmanager
    def _staged_write(self, key: str) -> Iterator[tuple[Path, Path]]:
        """A temporary file beside the target of `key`, removed unless the block moved it."""
        path = self._target(key)
        tmp = path.with_name(tmp_name(path.name))
        try:
            yield tmp, path
        except OSError as err:
            raise write_error(path, err) from None
        finally:
            tmp.unlink(missing_ok=True)

    def put(self, key: str, data: bytes) -> None:
        with self._staged_write(key) as (tmp, path):
            _write_synced(tmp, data)
            tmp.replace(path)
            fsync_dir(path.parent)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        with self._staged_write(key) as (tmp, path):
            _write_synced(tmp, data)
            try:
                os.link(tmp, path)  # the whole file appears at once, or the call fails: one winner
            except FileExistsError:
                return False
            except OSError as err:
                if err.errno not in _NO_LINKS:
                    raise
                return _create_exclusive(path, data)
            fsync_dir(path.parent)
            return True

    def put_file(self, key: str, path: Path) -> None:
        with self._staged_write(key) as (tmp, target):
            try:
                fsync_file(path)
                Path(path).replace(target)  # a file of the workspace: the same file system
            except OSError as err:
                if err.errno != errno.EXDEV:
                    raise
                shutil.copyfile(path, tmp)
                fsync_file(tmp)
                tmp.replace(target)
            fsync_dir(target.parent)

    def delete(self, keys: Iterable[str]) -> None:
        folders = set()
        for key in keys:
            path = self.path(key)
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                raise write_error(path, err) from None
            folders.add(path.parent)
        for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
            _remove_empty(folder, self.root)

    def lock(
        self, key: str, timeout_s: float, on_wait: Callable[[str], None] | None = None
    ) -> contextlib.AbstractContextManager[Lease]:
        return _flock(self._target(key), timeout_s, on_wait)

    def workspace(self) -> contextlib.AbstractContextManager[Path]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(self.root, err) from None
        return temporary_folder(self.root, f"work-{os.urandom(4).hex()}")

    def alias(self, key: str, target: str) -> None:
        link = self.path(key)
        if link.exists() and not link.is_symlink():
            raise StoreError(f"{link} is not a link: refusing to replace it. Move it away and run again")
        tmp = link.with_name(tmp_name(link.name))
        relative = os.path.relpath(self.path(target), link.parent)
        try:
            tmp.symlink_to(relative, target_is_directory=True)
        except OSError as err:
            if err.errno in _NO_LINKS:
                return  # readers use the pointer file instead
            raise write_error(link, err) from None
        try:
            tmp.replace(link)
            fsync_dir(link.parent)
        except OSError as err:
            remove(tmp)
            raise write_error(link, err) from None

    def check_usable(self) -> None:
        found = sorted(set(str(self.root.absolute())) & PATTERN_CHARACTERS)
        if found:
            raise StoreError(
                f"{self.root}: its path holds {' '.join(found)}, which DuckDB reads as a file pattern or option; "
                "use a folder whose path has none of * ? [ ] { } \\"
            )
        probe = self.root / tmp_name("probe")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            _write_synced(probe, b"probe")
        except OSError as err:
            raise write_error(self.root, err) from None
        finally:
            remove(probe)

    def cleanup(self) -> builtins.list[str]:
        removed: builtins.list[str] = []
        if not self.root.is_dir():
            return removed
        for folder, dirnames, filenames in os.walk(self.root, followlinks=False):
            for name in [*dirnames, *filenames]:
                if name.startswith(TMP_PREFIX) and not owner_alive(name):
                    remove(Path(folder) / name)
                    removed.append(str(Path(folder) / name))
            dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]
        return removed

    def options(self) -> dict[str, Any] | None:
        return None


def _info(key: str, info: os.stat_result) -> ObjectInfo:
    tag = f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"
    return ObjectInfo(key, info.st_size, datetime.fromtimestamp(info.st_mtime, tz=UTC), tag)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Create-if-absent where the file system has no links: O_EXCL, then the bytes."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(path.parent)
    return True


def _remove_empty(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents up to `root` while they are empty."""
    while folder != root and inside(folder, root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


@contextlib.contextmanager
def _flock(path: Path, timeout_s: float, on_wait: Callable[[str], None] | None) -> Iterator[Lease]:
    with writer_lock(path, timeout_s, on_wait):
        yield _FileLease()
