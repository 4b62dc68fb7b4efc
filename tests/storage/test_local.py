"""The local disk as storage: durable writes, create-if-absent that never overwrites, the one atomic rename."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from pipeline.storage import LocalStorage, Storage
from pipeline.storage.local import HOST, inside, owner_alive, tmp_name
from pipeline.storage.lock import wait_for_lock


def test_local_storage_is_a_storage(tmp_path: Path) -> None:
    storage: Storage = LocalStorage(tmp_path)  # checked by mypy against the protocol
    storage.write_bytes("a/b.txt", b"one")
    assert storage.read_bytes("a/b.txt") == b"one"
    with storage.open_write("a/c.txt") as handle:
        handle.write(b"streamed")
    assert storage.list("a") == ["b.txt", "c.txt"]
    assert storage.list("missing") == []
    storage.delete("a")
    storage.delete("a")  # what is gone stays gone, quietly
    assert storage.list("") == []


def test_create_if_absent_never_overwrites(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert storage.create_if_absent("claims/000001", b"mine")
    assert not storage.create_if_absent("claims/000001", b"theirs")
    assert storage.read_bytes("claims/000001") == b"mine"


def test_create_if_absent_has_one_winner_among_racing_writers(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    start = threading.Barrier(8)
    won: list[int] = []

    def claim(n: int) -> None:
        start.wait()
        if storage.create_if_absent("claim", str(n).encode()):
            won.append(n)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert storage.read_bytes("claim") == str(won[0]).encode()


def test_rename_moves_a_folder_at_once_and_never_merges_into_another(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes("tmp-1/file", b"1")
    storage.rename("tmp-1", "final")
    assert storage.read_bytes("final/file") == b"1"
    storage.write_bytes("tmp-2/file", b"2")
    with pytest.raises(OSError, match=r"(exists|not empty)") as err:
        storage.rename("tmp-2", "final")
    assert err.value.errno in (errno.EEXIST, errno.ENOTEMPTY)
    assert storage.read_bytes("final/file") == b"1"


def test_reads_never_follow_a_link(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"outside")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.json").symlink_to(tmp_path / "secret")
    with pytest.raises(OSError, match="is a link"):
        LocalStorage(tmp_path / "out").read_bytes("manifest.json")


def test_a_temporary_name_tells_a_live_owner_from_a_dead_one() -> None:
    mine = tmp_name("000001")
    assert f"-h{HOST}-pid{os.getpid()}-" in mine
    assert not owner_alive(mine)  # this thread's own: a leftover when it cleans up
    other_thread: list[bool] = []
    thread = threading.Thread(target=lambda: other_thread.append(owner_alive(mine)))
    thread.start()
    thread.join()
    assert other_thread == [True]  # a live thread's work in progress, to another thread
    assert not owner_alive(f".tmp-000001-h{HOST}-pid999999999-t1")  # no such process: a dead run's
    other_host = "ffffffff" if HOST != "ffffffff" else "00000000"
    assert owner_alive(f".tmp-000001-h{other_host}-pid1-t1")  # another machine's: it cannot be checked
    assert not owner_alive(".tmp-000001")  # no owner recorded


def test_inside_compares_whole_path_parts(tmp_path: Path) -> None:
    assert inside(tmp_path / "raw" / "a.txt", tmp_path / "raw")
    assert inside(tmp_path / "raw", tmp_path / "raw")
    assert not inside(tmp_path / "raw2" / "a.txt", tmp_path / "raw")


def test_wait_for_lock_gives_up_at_its_timeout_and_says_once_that_it_waits(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    busy: list[int] = []
    with path.open("a") as first, path.open("a") as second:
        assert wait_for_lock(first, 0)
        assert not wait_for_lock(second, 0.3, on_busy=lambda: busy.append(1), poll_s=0.05)
        assert busy == [1]
