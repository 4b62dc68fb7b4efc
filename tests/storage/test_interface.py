"""The storage interface, one behaviour at a time, against both implementations: local disk and a real S3 server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipeline.errors import StoreError, StoreLockedError
from pipeline.storage import Storage, open_storage


@pytest.fixture(params=["disk", "s3"])
def storage(request, tmp_path: Path) -> Storage:
    """An empty storage of each kind: a folder, and a prefix of the session's SeaweedFS."""
    if request.param == "disk":
        return open_storage(tmp_path / "root")
    request.getfixturevalue("s3")
    return open_storage(request.getfixturevalue("s3_prefix"))


def test_an_object_is_written_read_and_replaced_whole(storage: Storage) -> None:
    storage.put("a/b.txt", b"one")
    assert storage.get("a/b.txt") == b"one"
    storage.put("a/b.txt", b"two")
    assert storage.get("a/b.txt") == b"two"
    assert storage.get_range("a/b.txt", 1, 5) == b"wo"
    info = storage.head("a/b.txt")
    assert info is not None
    assert (info.key, info.size) == ("a/b.txt", 3)
    assert storage.get("missing") is None
    assert storage.head("missing") is None


def test_put_if_absent_never_overwrites(storage: Storage) -> None:
    assert storage.put_if_absent("versions/000001/manifest.json", b"mine")
    assert not storage.put_if_absent("versions/000001/manifest.json", b"theirs")
    assert storage.get("versions/000001/manifest.json") == b"mine"


def test_put_if_absent_has_one_winner_among_racing_writers(storage: Storage) -> None:
    start = threading.Barrier(6)
    won: list[int] = []

    def claim(n: int) -> None:
        start.wait()
        if storage.put_if_absent("claim", str(n).encode()):
            won.append(n)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert storage.get("claim") == str(won[0]).encode()


def test_a_local_file_is_put_and_read_back_as_a_local_file(storage: Storage, tmp_path: Path) -> None:
    with storage.workspace() as work:
        written = work / "part.bin"
        written.write_bytes(b"x" * 100_000)
        storage.put_file("data/part.bin", written)
    local = storage.local_file("data/part.bin", tmp_path / "copy" / "part.bin")
    assert local.read_bytes() == b"x" * 100_000
    with pytest.raises(FileNotFoundError):
        storage.local_file("data/missing.bin", tmp_path / "copy" / "missing.bin")


def test_listing_is_recursive_sorted_and_deleting_is_quiet_about_what_is_gone(storage: Storage) -> None:
    for key in ("v/10", "v/1/x.parquet", "v/1/sub/y", "w"):
        storage.put(key, key.encode())
    assert [o.key for o in storage.list("v").objects] == ["v/1/sub/y", "v/1/x.parquet", "v/10"]
    assert [o.key for o in storage.child("v").list().objects] == ["1/sub/y", "1/x.parquet", "10"]
    storage.delete(["v/1/x.parquet", "v/1/sub/y", "v/1/gone"])
    assert [o.key for o in storage.list().objects] == ["v/10", "w"]


def test_the_tag_changes_with_the_content(storage: Storage) -> None:
    storage.put("x", b"first")
    first = storage.head("x")
    storage.put("x", b"other")
    second = storage.head("x")
    assert first is not None
    assert second is not None
    assert first.tag != second.tag


def test_a_key_that_could_escape_the_root_is_refused(storage: Storage) -> None:
    for key in ("../x", "a/../../b", "a//b", "/abs", "a/./b"):
        with pytest.raises(StoreError, match="escape"):
            storage.put(key, b"x")


def test_one_writer_holds_the_lock_and_a_second_is_told_who(storage: Storage) -> None:
    told: list[str] = []
    with storage.lock(".lock", timeout_s=5) as lease:
        lease.check()
        with pytest.raises(StoreLockedError, match="another run"), storage.lock(".lock", 0.3, told.append):
            pass
    assert told
    assert "pid" in told[0]
    with storage.lock(".lock", timeout_s=5):  # released: taken at once
        pass


def test_a_usable_root_is_checked_by_a_write(storage: Storage) -> None:
    storage.check_usable()
    assert not storage.list().objects  # the probe is gone


def test_a_child_and_a_parent_are_the_same_storage_one_level_down_and_up(storage: Storage) -> None:
    child = storage.child("versions/000001")
    child.put("manifest.json", b"{}")
    assert storage.get("versions/000001/manifest.json") == b"{}"
    assert child.name == "000001"
    assert child.parent().parent().get("versions/000001/manifest.json") == b"{}"
    assert child.within(storage)
    assert not storage.within(child)
