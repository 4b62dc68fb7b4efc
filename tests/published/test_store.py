"""The store over any storage: versions by manifest, ids in their exact shape, the cache, what dead writers left."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import load
from pipeline.errors import StoreError, VersionDamagedError
from pipeline.published import Store
from pipeline.storage import open_storage
from tests.listings import RECORDS
from tests.refreshes import refresh


def test_a_version_is_its_manifest_and_latest_the_newest(published: Path, tmp_path: Path) -> None:
    store = Store.open(published)
    assert (store.version_ids(), store.latest_id(), store.resolve(None), store.resolve("latest")) == (
        ["000001"], "000001", "000001", "000001"
    )  # fmt: skip
    store.storage.put("versions/000002/report.html", b"<p>")  # a folder without a manifest is no version
    assert store.version_ids() == ["000001"]
    for bad in ("../000001", "1", "0000001", "00000a"):
        with pytest.raises(StoreError, match="is not a version id"):
            store.resolve(bad)
    with pytest.raises(StoreError, match="version 000009 does not exist"):
        store.resolve("000009")
    with pytest.raises(StoreError, match="no version has been published"):
        Store.open(tmp_path / "empty").resolve(None)


def test_the_lock_holder_removes_a_dead_writers_version_folder_but_no_older_one(published: Path, tmp_path) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    store = Store.open(out)
    store.storage.put("versions/000002/report.html", b"<p>")  # a writer that died before its commit
    store.storage.put("versions/000000/report.html", b"<p>")  # older than latest: a pruned version's, retention's
    with store.lock(5):
        removed = store.clean_uncommitted()
    assert removed == [store.storage.where("versions/000002")]
    assert store.storage.head("versions/000000/report.html") is not None


def test_files_shared_unread_are_checked_for_presence_and_size(published: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    store = Store.open(out)
    files = [f for files in store.manifest("000001").tables.values() for f in files]
    store.check_stored(files)
    papers = next(f for f in files if f.key.startswith("data/papers/"))
    (out / papers.key).write_bytes((out / papers.key).read_bytes()[:-1])
    with pytest.raises(VersionDamagedError, match=f"{papers.key} differs from the sha256 in its manifest"):
        store.check_stored(files)
    (out / papers.key).unlink()
    with pytest.raises(VersionDamagedError, match=f"{papers.key} is missing"):
        store.check_stored(files)


def test_the_pointers_follow_the_newest_version(published: Path) -> None:
    assert (published / "LATEST_ID").read_text() == "000001\n"
    assert (published / "latest").readlink() == Path("versions/000001")


@pytest.mark.server
def test_a_file_every_version_shares_is_downloaded_once(s3, s3_prefix, tmp_path: Path, monkeypatch) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text("".join(RECORDS[:10]), encoding="utf-8")
    refresh(raw, s3_prefix)
    (raw / "listing_2026-01-02.txt").write_text(RECORDS[11], encoding="utf-8")
    refresh(raw, s3_prefix)
    store = Store.open(s3_prefix)
    shared = set(store.manifest("000001").tables["papers"]) & set(store.manifest("000002").tables["papers"])
    assert shared  # the first version's papers file is the second's too
    storage_type = type(open_storage(s3_prefix))
    fetched: list[str] = []
    real = storage_type.local_file

    def counted(self, key: str, into: Path) -> Path:
        fetched.append(key)
        return real(self, key, into)

    monkeypatch.setattr(storage_type, "local_file", counted)
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "a-new-cache"))
    for version in ("000001", "000002", "000001"):
        load("papers", version=version, out=s3_prefix)
    assert sorted(fetched) == sorted({f.key for v in ("000001", "000002") for f in store.manifest(v).tables["papers"]})
