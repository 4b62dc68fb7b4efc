"""Advisory file locks (flock): one loop that waits for a lock, used by every lock taken on local disk."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from pipeline.errors import StoreLockedError, StoreWriteError

POLL_S = 0.2


def wait_for_lock(handle: IO[Any], timeout_s: float, on_busy: Callable[[], None] | None = None,
                  poll_s: float = POLL_S) -> bool:  # fmt: skip
    """Take the exclusive lock of the open file `handle`, waiting up to `timeout_s` seconds;
    False when the time ran out. `on_busy` is called once, when the lock is held by another."""
    deadline = time.monotonic() + timeout_s
    waiting = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            if not waiting and on_busy is not None:
                on_busy()
            waiting = True
            time.sleep(poll_s)


@contextlib.contextmanager
def writer_lock(lock_path: Path, timeout_s: float, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the exclusive lock of the file `lock_path` (created if missing); wait up to
    `timeout_s` seconds for it, then StoreLockedError naming the holder.

    `on_wait` is called once, with the holder, when the lock is taken and the caller must wait.
    """
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        handle = os.fdopen(fd, "a+")
    except OSError as err:
        raise StoreWriteError(f"cannot write {lock_path}: {err.strerror}", err.errno) from None
    with handle:

        def holder() -> str:
            handle.seek(0)
            return handle.read().strip() or "unknown"

        busy = (lambda: on_wait(holder())) if on_wait is not None else None
        if not wait_for_lock(handle, timeout_s, busy):
            raise StoreLockedError(
                f"another run ({holder()}) is publishing to {lock_path.parent}; waited {timeout_s:.0f} s. "
                "Retry when it has finished."
            )
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
        except OSError as err:
            raise StoreWriteError(f"cannot write {lock_path}: {err.strerror}", err.errno) from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()  # so that a later holder that writes nothing is not named after us
            fcntl.flock(handle, fcntl.LOCK_UN)
