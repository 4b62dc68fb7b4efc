"""The writer lock on object storage: an object created if absent and kept alive by compare-and-swap."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from pipeline.errors import StoreError, StoreLockedError
from pipeline.storage.local import HOST, pid_alive


class ConditionalWrites(Protocol):
    """What a lease needs of a storage: writes on a condition of the object's current tag."""

    @property
    def url(self) -> str: ...

    def where(self, key: str) -> str: ...

    def put_new(self, key: str, data: bytes) -> str | None: ...

    def get_with_tag(self, key: str) -> tuple[bytes, str] | None: ...

    def replace_if_tag(self, key: str, data: bytes, tag: str) -> str | None: ...

    def delete(self, keys: Any) -> None: ...


LEASE_SETTING = "PIPELINE_S3_LEASE_S"
DEFAULT_LEASE_S = 60.0
POLL_S = 1.0


def lease_seconds() -> float:
    """How long a holder may go without renewing before its lock is taken over (PIPELINE_S3_LEASE_S)."""
    try:
        value = float(os.environ.get(LEASE_SETTING, DEFAULT_LEASE_S))
    except ValueError:
        raise StoreError(f"{LEASE_SETTING} must be a number of seconds") from None
    if not 1 <= value <= 3600:
        raise StoreError(f"{LEASE_SETTING} must lie between 1 and 3600 seconds")
    return value


class Lease:
    """A held lock: renewed on a thread of its own every quarter lease; `check` raises once
    another writer has taken it over (this run stalled past its lease), so that it never commits."""

    def __init__(self, storage: ConditionalWrites, key: str, tag: str, lease_s: float, holder: dict[str, Any]) -> None:
        self.storage, self.key, self.tag, self.lease_s, self.holder = storage, key, tag, lease_s, holder
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_until_stopped, name="s3-lease", daemon=True)
        self._thread.start()

    def _renew_until_stopped(self) -> None:
        renewals = 0
        while not self._stop.wait(self.lease_s / 4):
            renewals += 1
            try:
                tag = self.storage.replace_if_tag(self.key, _body({**self.holder, "renewal": renewals}), self.tag)
            except StoreError:
                continue  # the server may be back before the lease runs out; `check` tells if not
            if tag is None:
                self.lost = True
                return
            self.tag = tag

    def check(self) -> None:
        """StoreError when the lock is no longer this run's."""
        if self.lost:
            raise StoreLockedError(
                f"the writer lock {self.storage.where(self.key)} was taken over by another run (this one went "
                f"{self.lease_s:.0f} s without renewing it): nothing was published"
            )

    def release(self) -> None:
        """Stop renewing and delete the lock object, if it is still this run's."""
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(StoreError):
            found = self.storage.get_with_tag(self.key)
            if found is not None and found[1] == self.tag:
                self.storage.delete([self.key])


def _body(holder: dict[str, Any]) -> bytes:
    return json.dumps(holder, sort_keys=True).encode()


def _dead_here(found: bytes) -> bool:
    """True when the holder recorded in a lock object was a process of this machine that is gone."""
    try:
        holder = json.loads(found)
        return bool(holder.get("host") == HOST and not pid_alive(int(holder["pid"])))
    except (ValueError, TypeError, KeyError, AttributeError):
        return False


def _holder_text(found: bytes) -> str:
    try:
        holder = json.loads(found)
        return f"host {holder['host']} pid {int(holder['pid'])}"
    except (ValueError, TypeError, KeyError):
        return "unknown"


@contextlib.contextmanager
def object_lock(
    storage: ConditionalWrites, key: str, timeout_s: float, on_wait: Callable[[str], None] | None = None
) -> Iterator[Lease]:
    """Hold the lock object `key` of `storage`; wait up to `timeout_s` seconds, then StoreLockedError.

    Taken with create-if-absent. A holder renews it (compare-and-swap on its ETag) every quarter
    lease; a lock whose ETag has not changed for a whole lease, as this process's own clock
    measures it (no clock is shared between machines), or whose holder is a dead process of this
    machine, is taken over with compare-and-swap, so that of two waiters only one wins.
    """
    lease_s = lease_seconds()
    holder = {"host": HOST, "pid": os.getpid(), "token": os.urandom(8).hex(), "lease_s": lease_s}
    deadline = time.monotonic() + timeout_s
    seen: tuple[str, float] | None = None
    waiting = False
    while True:
        tag = storage.put_new(key, _body(holder))
        if tag is not None:
            break
        found = storage.get_with_tag(key)
        if found is None:
            continue  # released meanwhile: try again at once
        data, current = found
        now = time.monotonic()
        if seen is None or seen[0] != current:
            seen = (current, now)
        if _dead_here(data) or now - seen[1] >= lease_s:
            tag = storage.replace_if_tag(key, _body(holder), current)
            if tag is not None:
                break
        if not waiting and on_wait is not None:  # told even when the first look is already past the deadline
            on_wait(_holder_text(data))
        waiting = True
        if now >= deadline:
            raise StoreLockedError(
                f"another run ({_holder_text(data)}) is publishing to {storage.url}; waited "
                f"{timeout_s:.0f} s. Retry when it has finished (a dead run's lock lapses after {lease_s:.0f} s)"
            )
        time.sleep(min(POLL_S, max(deadline - now, 0.05)))
    lease = Lease(storage, key, tag, lease_s, holder)
    try:
        yield lease
    finally:
        lease.release()
