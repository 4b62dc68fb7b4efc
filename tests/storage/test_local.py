"""The local disk as storage: what it adds to the interface's rules (links, temporary names, durable writes)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from pipeline.errors import StoreError
from pipeline.storage import LocalStorage, Storage
from pipeline.storage.local import HOST, inside, owner_alive, tmp_name
from pipeline.storage.lock import wait_for_lock


def test_local_storage_is_a_storage(tmp_path: Path) -> None:
    storage: Storage = LocalStorage(tmp_path)  # checked by mypy against the protocol
    storage.put("a", b"1")
    assert storage.get("a") == b"1"


def test_reads_of_store_objects_never_follow_a_link(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"outside")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.json").symlink_to(tmp_path / "secret")
    with pytest.raises(OSError, match="is a link"):
        LocalStorage(tmp_path / "out").get("manifest.json")


def test_a_local_file_is_followed_only_to_a_file_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    root.mkdir()
    (root / "real.txt").write_text("inside")
    (root / "inner.txt").symlink_to(root / "real.txt")
    (tmp_path / "secret.txt").write_text("outside")
    (root / "outer.txt").symlink_to(tmp_path / "secret.txt")
    storage = LocalStorage(root)
    assert storage.local_file("inner.txt", tmp_path / "unused").read_text() == "inside"
    with pytest.raises(OSError, match="outside"):
        storage.local_file("outer.txt", tmp_path / "unused")


def test_a_listing_passes_over_links_out_of_the_root_and_what_is_no_file(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    root.mkdir()
    (root / "a.txt").write_text("a")
    (root / "loop.txt").symlink_to(root / "loop.txt")
    (tmp_path / "secret.txt").write_text("s")
    (root / "out.txt").symlink_to(tmp_path / "secret.txt")
    os.mkfifo(root / "fifo.txt")
    (tmp_path / "elsewhere").mkdir()
    (root / "folder").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / f"{tmp_name('x')}").write_text("work in progress")
    listing = LocalStorage(root).list()
    assert [o.key for o in listing.objects] == ["a.txt"]
    reasons = dict(listing.skipped)
    assert "loops" in reasons["loop.txt"]
    assert "outside" in reasons["out.txt"]
    assert "not a regular file" in reasons["fifo.txt"]
    assert "outside" in reasons["folder"]


def test_no_write_goes_through_a_link(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "data").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(StoreError, match="is a link"):
        LocalStorage(root).put("data/x.parquet", b"x")
    assert not list((tmp_path / "elsewhere").iterdir())


def test_an_alias_is_a_link_swapped_at_once_and_never_replaces_a_folder(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("versions/000001/manifest.json", b"1")
    storage.put("versions/000002/manifest.json", b"2")
    storage.alias("latest", "versions/000001")
    storage.alias("latest", "versions/000002")
    assert (tmp_path / "latest" / "manifest.json").read_bytes() == b"2"
    assert str((tmp_path / "latest").readlink()) == "versions/000002"
    (tmp_path / "latest").unlink()
    (tmp_path / "latest").mkdir()  # a `cp -rL` copy: it would stay stale
    with pytest.raises(StoreError, match="not a link"):
        storage.alias("latest", "versions/000002")


def test_cleanup_removes_a_dead_writers_temporary_files_only(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    dead = tmp_path / "data" / f".tmp-x.parquet-h{HOST}-pid999999999-t1"
    dead.parent.mkdir()
    dead.write_bytes(b"partial")
    live = tmp_path / tmp_name("mine")  # this process's other thread would be live; ours is a leftover
    other_host = "ffffffff" if HOST != "ffffffff" else "00000000"
    remote = tmp_path / f".tmp-y-h{other_host}-pid1-t1"
    remote.write_bytes(b"another machine's")
    live.write_bytes(b"x")
    removed = storage.cleanup()
    assert str(dead) in removed
    assert not dead.exists()
    assert remote.exists()  # another machine's work cannot be judged: it stays


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


def test_a_root_duckdb_would_misread_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="pattern"):
        LocalStorage(tmp_path / "out[1]").check_usable()


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
