"""The narrow interface through which the store reaches its storage (the local disk first)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import IO, Protocol


class Storage(Protocol):
    """Where a dataset's files live, by key (a relative, '/'-separated name).

    Five operations serve every layer: streamed writes, reads, listing, deleting and
    create-if-absent, which never overwrites (put-if-absent on object storage, the primitive
    Delta Lake commits with). The one atomic step the local disk adds is `rename`, of a finished
    folder into place; object storage would instead make a version visible by writing its
    manifest last, with create-if-absent, so that exactly one writer wins each version id.
    """

    def open_write(self, key: str) -> AbstractContextManager[IO[bytes]]:
        """A new object at `key`, streamed; durable and visible when the block ends."""
        ...

    def write_bytes(self, key: str, data: bytes) -> None:
        """`open_write` with all the bytes at once."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """The whole object at `key`."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Names directly under `prefix`, sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key` and everything under it; what is already gone is not an error."""
        ...

    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Write `data` at `key` unless it exists (then False); never overwrites."""
        ...
